from itemsapi.cli import main

main()

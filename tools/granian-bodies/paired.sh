#!/bin/bash
# paired.sh <kind GET|POST> <rounds>: WSGI and the RSGI front at once, each with its own wrk; CPU us/req of each worker
cd "$(dirname "$0")"
V=${VENV:-$(cd ../.. && pwd)/.venv}/bin  # the project's virtualenv unless VENV names another
$V/granian --interface wsgi --port 19310 --workers 1 flaskapp:app > /tmp/granian-bodies-p1.log 2>&1 & A=$!
$V/granian --interface rsgi --port 19311 --workers 1 front:app > /tmp/granian-bodies-p2.log 2>&1 & B=$!
sleep 2
WA=$(pgrep -P $A | head -1); WB=$(pgrep -P $B | head -1); tick=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
if [ $1 = GET ]; then pa=/hello; s=""; else pa=/echo; s="-s post.lua"; fi
for r in $(seq $2); do
  a0=$(cpu $WA); b0=$(cpu $WB)
  wrk -t1 -c16 -d5s $s http://127.0.0.1:19310$pa > /tmp/granian-bodies-wa.out & X=$!
  wrk -t1 -c16 -d5s $s http://127.0.0.1:19311$pa > /tmp/granian-bodies-wb.out; wait $X
  a1=$(cpu $WA); b1=$(cpu $WB)
  na=$(awk '/requests in/{print $1}' /tmp/granian-bodies-wa.out); nb=$(awk '/requests in/{print $1}' /tmp/granian-bodies-wb.out)
  echo "$1 round $r: wsgi $na req $(( (a1-a0)*1000000/tick/na )) us/req | rsgi-front $nb req $(( (b1-b0)*1000000/tick/nb )) us/req"
done
kill -INT $A $B; sleep 1; kill -9 $A $B 2>/dev/null; wait 2>/dev/null

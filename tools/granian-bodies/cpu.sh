#!/bin/bash
# cpu.sh <iface> <target> <port> : CPU time of the Granian worker per request
cd "$(dirname "$0")"
V=${VENV:-$(cd ../.. && pwd)/.venv}/bin  # the project's virtualenv unless VENV names another
$V/granian --interface $1 --port $3 --workers 1 $2 > /tmp/granian-bodies-c3.log 2>&1 & GP=$!
sleep 1.5
W=$(pgrep -P $GP | head -1)
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$W/stat; }
wrk -t1 -c16 -d1s http://127.0.0.1:$3/hello > /dev/null
for kind in GET POST; do
  if [ $kind = GET ]; then args="http://127.0.0.1:$3/hello"; else args="-s post.lua http://127.0.0.1:$3/echo"; fi
  c0=$(cpu); out=$(wrk -t1 -c16 -d5s $args); c1=$(cpu)
  n=$(echo "$out" | awk '/requests in/{print $1}'); rps=$(echo "$out" | awk '/Requests\/sec/{print $2}')
  echo "$1 $kind: $n req, $rps req/s, worker CPU $(( (c1-c0)*1000000/tick/n )) us/req"
done
kill -INT $GP; sleep 1; kill -9 $GP 2>/dev/null; wait $GP 2>/dev/null

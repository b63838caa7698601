#!/bin/bash
# run.sh <venv> <port> <mode>
V=$1; P=$2; M=$3
cd "$(dirname "$0")"
$V/bin/granian --interface wsgi --port $P --workers 1 --blocking-threads 8 $EXTRA app:app > /tmp/granian-bodies-gP.log 2>&1 &
GP=$!
sleep 1.5
$V/bin/python -c "import granian; print('granian', granian.__version__, 'mode', '$M')"
timeout 30 $V/bin/python probe.py $P $M
kill -INT $GP; sleep 1; kill -KILL $GP 2>/dev/null; wait $GP 2>/dev/null

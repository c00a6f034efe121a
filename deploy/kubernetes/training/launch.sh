#!/bin/sh
# One training pod = one torchrun agent driving NPROC_PER_NODE GPUs; NNODES pods make the Indexed Job.
# Pod 0 (JOB_COMPLETION_INDEX=0) hosts the c10d rendezvous store on port 29500, reached by every pod as
# $JOB_NAME-0.$SVC (its stable hostname under the headless Service). c10d numbers the nodes in the order
# of their host names, which for up to 10 pods is the completion index.
set -eu
: "${NNODES:?}" "${NPROC_PER_NODE:?}" "${JOB_COMPLETION_INDEX:?}" "${JOB_NAME:?}" "${SVC:?}"
rdzv_host="${RDZV_HOST:-$JOB_NAME-0.$SVC}"  # RDZV_HOST: another address (tests use 127.0.0.1)
rdzv_port="${RDZV_PORT:-29500}"
here="$(dirname "$0")"  # worker.sh sits beside this script (/scripts in the pod)

# Check the options before waiting for anyone: a bad one exits 2 right here, and the Job's
# podFailurePolicy fails the Job instead of retrying what cannot work.
sh "$here/worker.sh" --dry-run >/dev/null

# The other pods wait until pod 0's store accepts connections: its name resolves as soon as it has an IP,
# which can be minutes before its image is pulled, longer than torchrun would wait.
if [ "$JOB_COMPLETION_INDEX" != 0 ]; then
  waited=0
  until python -c 'import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 2).close()' \
      "$rdzv_host" "$rdzv_port" 2>/dev/null; do
    if [ "$waited" -ge "${RDZV_WAIT_S:-1800}" ]; then
      echo "launch: $rdzv_host:$rdzv_port did not answer within $waited s" >&2
      exit 1
    fi
    sleep 5
    waited=$((waited + 5))
  done
fi

if [ "$JOB_COMPLETION_INDEX" = 0 ]; then is_host=true; else is_host=false; fi
# --no-python: torchrun starts worker.sh for each GPU, and again after each of up to 3 restarts (a pod that
# left and came back), so the resume decision is taken by every worker start, not once per pod.
exec torchrun --nnodes="$NNODES" --nproc-per-node="$NPROC_PER_NODE" \
  --rdzv-backend=c10d --rdzv-endpoint="$rdzv_host:$rdzv_port" --rdzv-id="$JOB_NAME" \
  --rdzv-conf="is_host=$is_host,join_timeout=1800,read_timeout=300" --max-restarts=3 \
  --no-python /bin/sh "$here/worker.sh"

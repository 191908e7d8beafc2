# shellcheck shell=bash
# Shared pieces of bench/compare_peers.sh and bench/kernel_floor.sh (sourced, not run): starting
# and stopping the servers they compare, sampling a server's CPU time from /proc, and running the
# load tools. Messages start with $peers_tool (set it before sourcing; default compare_peers).
#
#   peers_tmp                                  scratch directory, removed on exit
#   apt_install PACKAGE...                     apt-get update + install (root or sudo)
#   install_missing_peer_tools                 apt-get installs nginx, redis-server, wrk,
#                                              redis-benchmark when missing (needs root or sudo)
#   require_two_cpus, raise_open_file_limit    exit with the reason when the machine cannot run
#                                              the comparison
#   start_shardloop NAME BINARY ARGS...        -> server_pids, port (binary picks a free port)
#   start_nginx                                -> server_pids (master, then worker), port
#   start_redis                                -> server_pids, port
#   stop_server                                ends server_pids
#   server_alive                               whether all server_pids still run
#   cpu_ticks PID...                           utime+stime summed over the PIDs, in clock ticks
#   run_wrk CONNECTIONS SECONDS                -> one result line (see _result_line)
#   run_redis_benchmark TEST CLIENTS PIPELINE REQUESTS KEYSPACE -> one result line
#
# Every process started here is recorded in started_procs as PID:COMM and ended by PID in the
# EXIT trap; nothing is ever ended by name.

peers_tool=${peers_tool:-compare_peers}  # the name messages start with
server_cpu=${SERVER_CPU:-1}
load_cpu=${LOAD_CPU:-0}
clk_tck=$(getconf CLK_TCK)
peers_tmp=$(mktemp -d)
started_procs=()
server_pids=()
port=""

# Whether PID is still the live process recorded as COMM (a PID can be reused once it is gone);
# "taskset" counts too, for a process killed before taskset has exec'd the server.
_alive() {
  local pid=$1 comm=$2 now
  now=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  { [ "$now" = "$comm" ] || [ "$now" = taskset ]; } &&
    ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null
}

_end_process() {
  if _alive "$1" "$2"; then kill "-$3" "$1" 2>/dev/null || true; fi
}

# Asks each recorded process to stop (SIGTERM), waits up to 5 s, then SIGKILLs what is left.
end_started_processes() {
  local entry pid comm
  for entry in "${started_procs[@]}"; do _end_process "${entry%%:*}" "${entry#*:}" TERM; done
  for _ in $(seq 50); do
    local left=0
    for entry in "${started_procs[@]}"; do
      _alive "${entry%%:*}" "${entry#*:}" && left=1
    done
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  for entry in "${started_procs[@]}"; do _end_process "${entry%%:*}" "${entry#*:}" KILL; done
  for entry in "${started_procs[@]}"; do wait "${entry%%:*}" 2>/dev/null || true; done
  started_procs=()
}
trap 'end_started_processes; rm -rf "$peers_tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

_record() {  # PID COMM: remember it for stop_server and the EXIT trap
  started_procs+=("$1:$2")
}

_find_binary() {  # NAME: on PATH, or in the sbin directories a non-root PATH may lack
  command -v "$1" 2>/dev/null || { [ -x "/usr/sbin/$1" ] && echo "/usr/sbin/$1"; } || true
}

# apt-get installs PACKAGES (root, or sudo; the package lists are refreshed first); returns
# apt-get's status, exits when neither root nor sudo is at hand.
apt_install() {
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then sudo=sudo; else
      echo "$peers_tool: need root or sudo to install: $*" >&2
      exit 1
    fi
  fi
  echo "$peers_tool: installing $*" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >&2 || true
  $sudo apt-get install -y -qq "$@" >&2
}

install_missing_peer_tools() {
  local missing=()
  [ -n "$(_find_binary nginx)" ] || missing+=(nginx-light)
  [ -n "$(_find_binary redis-server)" ] || missing+=(redis-server)
  [ -n "$(_find_binary redis-benchmark)" ] || missing+=(redis-tools)
  [ -n "$(_find_binary wrk)" ] || missing+=(wrk)
  [ ${#missing[@]} -eq 0 ] && return 0
  # Package scripts may try to start the system services; this script never uses them (it starts
  # its own servers on free ports) and never stops them.
  if ! apt_install "${missing[@]}"; then
    # Debian releases after 12 dropped the nginx-light flavour.
    missing=("${missing[@]/nginx-light/nginx}")
    apt_install "${missing[@]}" || {
      echo "$peers_tool: apt-get failed to install: ${missing[*]}" >&2
      exit 1
    }
  fi
}

# Exits unless there are 2 CPUs and taskset: servers and load tools run on separate CPUs.
require_two_cpus() {
  if [ "$(nproc)" -lt 2 ] || ! command -v taskset >/dev/null; then
    echo "$peers_tool: needs 2 CPUs and taskset (server and load tool on separate CPUs)" >&2
    exit 1
  fi
}

# 1000 connections need more descriptors than the usual soft limit of 1024: raises it to the hard
# limit (the servers and load tools inherit it), or exits when that is still too low.
raise_open_file_limit() {
  local hard
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=1048576
  ulimit -n "$hard" 2>/dev/null || true
  if [ "$(ulimit -n)" -lt 2100 ]; then
    echo "$peers_tool: open file limit $(ulimit -n) is too low for 1000 connections" >&2
    exit 1
  fi
}

# Sum of utime and stime (fields 14 and 15 of /proc/PID/stat) over the PIDs, in clock ticks. The
# command name (field 2) may hold spaces, so fields are counted after its closing parenthesis.
cpu_ticks() {
  local total=0 pid f
  for pid in "$@"; do
    # After "comm) " comes field 3 (state): utime is index 11 there, stime index 12.
    read -r -a f < <(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null) || true
    if [ ${#f[@]} -lt 13 ]; then
      echo "$peers_tool: server process $pid is gone" >&2
      echo "?"
      return 0
    fi
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A port no TCP socket on this machine uses (any state, IPv4 or IPv6), below the ephemeral range so
# the load tools' own connections cannot take it between now and the server's bind. A bind can
# still lose a race with another program; the start_* functions then retry on another port.
pick_free_port() {
  local low hi used p
  low=$(awk '{ print $1 }' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
  hi=$((low > 11024 ? low - 1 : 60999))
  used=$(awk 'FNR > 1 { split($2, a, ":"); print a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null)
  for _ in $(seq 100); do
    p=$((10000 + (RANDOM * 32768 + RANDOM) % (hi - 10000 + 1)))
    grep -qx "$(printf '%04X' "$p")" <<<"$used" || { echo "$p"; return 0; }
  done
  echo "$peers_tool: no free port found" >&2
  exit 1
}

# Waits (at most 10 s) until $port accepts connections while PID lives. On failure prints LOG and
# returns 1 (the process, if it still lives, is left for stop_server).
_wait_listening() {
  local pid=$1 log=$2
  for _ in $(seq 200); do
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    if [ -n "$port" ] && _port_open "$port"; then return 0; fi
    sleep 0.05
  done
  echo "$peers_tool: server (pid $pid) did not start listening on port ${port:-?}:" >&2
  tail -5 "$log" >&2
  return 1
}

# Runs START_FUNCTION (which picks a port and starts a server) up to 3 times, in case another
# program binds the port first.
_start_with_retries() {
  local attempt
  for attempt in 1 2 3; do
    "$1" && return 0
    stop_server
    echo "$peers_tool: start attempt $attempt failed" >&2
  done
  exit 1
}

start_shardloop() {
  local name=$1 binary=$2
  shift 2
  port=""
  : > "$peers_tmp/$name.log"
  taskset -c "$server_cpu" "$binary" --host 127.0.0.1 --port 0 --drain_seconds 1 "$@" \
    >"$peers_tmp/$name.log" 2>&1 &
  local pid=$!
  server_pids=("$pid")
  _record "$pid" "${binary##*/}"
  for _ in $(seq 200); do
    grep -q "listening on" "$peers_tmp/$name.log" && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  port=$(sed -n 's/.*listening on .*:\([0-9]*\) with.*/\1/p' "$peers_tmp/$name.log")
  server_log="$peers_tmp/$name.log"
  _wait_listening "$pid" "$server_log" || exit 1
}

# nginx as the current user: 1 worker process, `return 200 "hello\n"`, no access log, everything
# (config, pid file, logs, temp directories) under a scratch prefix.
start_nginx() { _start_with_retries _start_nginx_once; }
_start_nginx_once() {
  local nginx prefix="$peers_tmp/nginx"
  nginx=$(_find_binary nginx)
  port=$(pick_free_port)
  mkdir -p "$prefix/logs"
  {
    # As root, nginx would hand the worker to "nobody"; keep it as the current user instead.
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    cat <<EOF
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
daemon off;
master_process on;
pid $prefix/nginx.pid;
error_log $prefix/logs/error.log warn;
events {
  worker_connections 4096;
}
http {
  access_log off;
  client_body_temp_path $prefix/client_body;
  proxy_temp_path $prefix/proxy;
  fastcgi_temp_path $prefix/fastcgi;
  uwsgi_temp_path $prefix/uwsgi;
  scgi_temp_path $prefix/scgi;
  # http_server keeps a connection open for any number of requests; nginx's default (1000)
  # would make wrk reconnect now and then, at nginx's expense.
  keepalive_requests 100000000;
  server {
    listen 127.0.0.1:$port;
    location / {
      return 200 "hello\n";
    }
  }
}
EOF
  } > "$prefix/nginx.conf"
  taskset -c "$server_cpu" "$nginx" -p "$prefix" -c "$prefix/nginx.conf" \
    -e "$prefix/logs/error.log" >"$prefix/logs/stdout.log" 2>&1 &
  local master=$!
  _record "$master" nginx
  server_log="$prefix/logs/error.log"
  _wait_listening "$master" "$server_log" || return 1
  local workers=""
  for _ in $(seq 100); do
    workers=$(ps -o pid= --ppid "$master" | tr -d ' ' | tr '\n' ' ')
    [ -n "$workers" ] && break
    sleep 0.05
  done
  if [ "$(echo "$workers" | wc -w)" -ne 1 ]; then
    echo "$peers_tool: expected 1 nginx worker under master $master, found: '$workers'" >&2
    exit 1
  fi
  local w
  for w in $workers; do _record "$w" nginx; done
  # shellcheck disable=SC2206
  server_pids=("$master" $workers)
}

start_redis() { _start_with_retries _start_redis_once; }
_start_redis_once() {
  local redis
  redis=$(_find_binary redis-server)
  port=$(pick_free_port)
  mkdir -p "$peers_tmp/redis"
  taskset -c "$server_cpu" "$redis" --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no --dir "$peers_tmp/redis" --logfile "$peers_tmp/redis/redis.log" \
    >"$peers_tmp/redis/stdout.log" 2>&1 &
  local pid=$!
  server_pids=("$pid")
  _record "$pid" redis-server
  server_log="$peers_tmp/redis/redis.log"
  _wait_listening "$pid" "$server_log" || return 1
}

# Whether every server process is still running (a run it did not survive reports nothing).
server_alive() {
  local pid
  for pid in "${server_pids[@]}"; do
    [ -r "/proc/$pid/stat" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null || return 1
  done
}

stop_server() {
  end_started_processes
  server_pids=()
  port=""
}

_now() { date +%s.%N; }

# Prints the result line of one load run, "rps requests tool_seconds wall_seconds cpu_us errors",
# from what the run_* functions below measured.
_result_line() {
  local rps=$1 requests=$2 tool_s=$3 t0=$4 t1=$5 c0=$6 c1=$7 errors=$8
  awk -v rps="$rps" -v n="$requests" -v ts="$tool_s" -v t0="$t0" -v t1="$t1" -v c0="$c0" \
    -v c1="$c1" -v hz="$clk_tck" -v e="$errors" \
    'BEGIN { printf "%s %s %s %.3f %.0f %s\n", rps, n, ts, t1 - t0, (c1 - c0) * 1e6 / hz, e }'
}

# One wrk run against $port with CONNECTIONS connections for SECONDS, pinned to the load CPU;
# the server's CPU is sampled just before wrk starts and just after it exits.
run_wrk() {
  local connections=$1 duration=$2 out="$peers_tmp/wrk.out"
  local c0 c1 t0 t1
  c0=$(cpu_ticks "${server_pids[@]}")
  t0=$(_now)
  taskset -c "$load_cpu" timeout $((duration * 3 + 30)) wrk -t1 -c"$connections" -d"${duration}s" \
    "http://127.0.0.1:$port/" >"$out" 2>&1 || true
  t1=$(_now)
  c1=$(cpu_ticks "${server_pids[@]}")
  local rps requests tool_s errors
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$out")
  requests=$(sed -n 's/^ *\([0-9]*\) requests in \([0-9.]*\)\([a-z]*\),.*/\1/p' "$out")
  tool_s=$(sed -n 's/^ *[0-9]* requests in \([0-9.]*\)\([a-z]*\),.*/\1 \2/p' "$out" |
    awk '{ print ($2 == "ms") ? $1 / 1000 : ($2 == "m") ? $1 * 60 : $1 }')
  # Socket errors and non-2xx answers, summed; a missing summary (wrk failed) is an error too.
  errors=$(awk '/Socket errors:/ { gsub(/[A-Za-z:,]+/, " "); for (i = 1; i <= NF; i++) s += $i }
                /Non-2xx or 3xx responses:/ { s += $NF }
                END { print s + 0 }' "$out")
  if [ -z "$rps" ] || [ -z "$requests" ]; then
    echo "$peers_tool: wrk gave no result:" >&2
    cat "$out" >&2
    rps=0 requests=0 tool_s=0 errors=1
  fi
  _result_line "$rps" "$requests" "$tool_s" "$t0" "$t1" "$c0" "$c1" "$errors"
}

# One redis-benchmark run of one test (set or get) against $port, pinned to the load CPU; keys
# drawn from KEYSPACE (-r).
run_redis_benchmark() {
  local test=$1 clients=$2 pipeline=$3 requests=$4 keyspace=$5 out="$peers_tmp/redis-benchmark.out"
  local c0 c1 t0 t1
  c0=$(cpu_ticks "${server_pids[@]}")
  t0=$(_now)
  taskset -c "$load_cpu" timeout "${BENCHMARK_TIMEOUT:-300}" redis-benchmark -h 127.0.0.1 \
    -p "$port" -c "$clients" -P "$pipeline" -n "$requests" -r "$keyspace" -t "$test" \
    >"$out" 2>&1 || echo "Error: redis-benchmark exited with $?" >>"$out"
  t1=$(_now)
  c1=$(cpu_ticks "${server_pids[@]}")
  local rps done_n tool_s errors
  rps=$(sed -n 's/.*throughput summary: *\([0-9.]*\) requests per second.*/\1/p' "$out")
  done_n=$(sed -n 's/^ *\([0-9]*\) requests completed in \([0-9.]*\) seconds.*/\1/p' "$out")
  tool_s=$(sed -n 's/^ *[0-9]* requests completed in \([0-9.]*\) seconds.*/\1/p' "$out")
  errors=$(grep -c -i "error" "$out" || true)
  if [ -z "$rps" ] || [ -z "$done_n" ]; then
    echo "$peers_tool: redis-benchmark gave no result:" >&2
    tail -5 "$out" >&2
    rps=0 done_n=0 tool_s=0 errors=$((errors + 1))
  elif [ "$errors" -gt 0 ]; then
    grep -i -m3 "error" "$out" | sed "s/^/$peers_tool: redis-benchmark: /" >&2
  fi
  _result_line "$rps" "$done_n" "$tool_s" "$t0" "$t1" "$c0" "$c1" "$errors"
}

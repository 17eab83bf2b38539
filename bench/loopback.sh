# Sourced by the benchmarks that need servers on loopback: free ports, waiting for an
# answer, and a loopback nginx answering 200 from memory. Expects $work (a temporary
# directory) and the array pids (processes to stop at exit) to exist.

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() { # URL [SECONDS]: until it answers (default at most 10 s)
    for _ in $(seq $((${2:-10} * 10))); do
        curl -sf -o /dev/null "$1" && return 0
        sleep 0.1
    done
    echo "$0: $1 never answered" >&2
    exit 1
}

# Starts nginx on a free loopback port; sets web (its port) and nginx_pid.
start_nginx() {
    web=$(free_port)
    mkdir -p "$work/nginx"
    cat >"$work/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/nginx;
    proxy_temp_path $work/nginx;
    fastcgi_temp_path $work/nginx;
    uwsgi_temp_path $work/nginx;
    scgi_temp_path $work/nginx;
    server {
        listen 127.0.0.1:$web backlog=4096;
        location / { return 200 "ok\n"; }
    }
}
NGINX
    /usr/sbin/nginx -c "$work/nginx.conf" &
    nginx_pid=$!
    pids+=("$nginx_pid")
    wait_for "http://127.0.0.1:$web/health"
}

/*
 * A closed-loop load generator for one unary gRPC method, in C over libnghttp2.
 *
 * Why not a Python client: on a 2-core machine the load generator shares the cores with the
 * server it measures, and a Python gRPC client spends about as much CPU per call as the
 * server does, so it measures itself as much as the server. This one costs a few microseconds
 * per call. It speaks just enough gRPC for unary calls over plaintext HTTP/2: a POST with
 * `content-type: application/grpc`, the message with its 5-byte prefix, and `grpc-status`
 * read from the trailers.
 *
 *   grpc_load HOST PORT PATH BODIES CONNECTIONS IN_FLIGHT WARMUP_S DURATION_S OUT
 *
 * BODIES: request messages, each a little-endian uint32 length and the serialised message;
 * sent in file order, round and round (write them already shuffled). IN_FLIGHT requests are
 * kept outstanding over CONNECTIONS connections; each completed one is replaced at once.
 * Calls that start after WARMUP_S and end within DURATION_S after it are measured: OUT gets
 * their latencies in seconds (float64, native order), and stdout one JSON line with counts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    uint8_t *data; /* 5-byte gRPC prefix + message */
    size_t len;
} body_t;

typedef struct {
    int fd;
    nghttp2_session *session;
} conn_t;

typedef struct {
    conn_t *conn;
    double started;
    size_t body;
    size_t sent;
    int http_ok;
    int grpc_ok;
} call_t;

static body_t *bodies;
static size_t n_bodies, next_body;
static const char *method_path;
static char authority[300];
static double measure_from, measure_until;
static double *latencies;
static size_t n_latencies, cap_latencies;
static long errors, in_flight;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static void load_bodies(const char *file) {
    FILE *f = fopen(file, "rb");
    if (!f) die(file);
    size_t cap = 1024;
    bodies = malloc(cap * sizeof *bodies);
    uint8_t head[4];
    while (fread(head, 1, 4, f) == 4) {
        uint32_t n = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 |
                     (uint32_t)head[3] << 24;
        if (n_bodies == cap) bodies = realloc(bodies, (cap *= 2) * sizeof *bodies);
        body_t *b = &bodies[n_bodies++];
        b->len = 5 + (size_t)n;
        b->data = malloc(b->len);
        b->data[0] = 0; /* not compressed */
        b->data[1] = (uint8_t)(n >> 24);
        b->data[2] = (uint8_t)(n >> 16);
        b->data[3] = (uint8_t)(n >> 8);
        b->data[4] = (uint8_t)n;
        if (fread(b->data + 5, 1, n, f) != n) die("truncated bodies file");
    }
    fclose(f);
    if (!n_bodies) {
        fprintf(stderr, "%s holds no request\n", file);
        exit(2);
    }
}

static ssize_t read_body(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                         size_t length, uint32_t *flags, nghttp2_data_source *source,
                         void *user_data) {
    (void)session, (void)stream_id, (void)user_data;
    call_t *call = source->ptr;
    body_t *b = &bodies[call->body];
    size_t n = b->len - call->sent;
    if (n > length) n = length;
    memcpy(buf, b->data + call->sent, n);
    call->sent += n;
    if (call->sent == b->len) *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define HEADER(name, value)                                                                \
    {                                                                                      \
        (uint8_t *)(name), (uint8_t *)(value), strlen(name), strlen(value),                \
            NGHTTP2_NV_FLAG_NONE                                                           \
    }

static void start_call(conn_t *conn) {
    call_t *call = calloc(1, sizeof *call);
    call->conn = conn;
    call->body = next_body++ % n_bodies;
    nghttp2_nv headers[] = {
        HEADER(":method", "POST"),
        HEADER(":scheme", "http"),
        HEADER(":path", method_path),
        HEADER(":authority", authority),
        HEADER("content-type", "application/grpc"),
        HEADER("te", "trailers"),
    };
    nghttp2_data_provider provider;
    provider.source.ptr = call;
    provider.read_callback = read_body;
    call->started = now();
    if (nghttp2_submit_request(conn->session, NULL, headers, 6, &provider, call) < 0) {
        fprintf(stderr, "cannot submit a request\n");
        exit(2);
    }
    in_flight++;
}

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length, int flags,
                       void *user_data) {
    (void)session, (void)flags;
    conn_t *conn = user_data;
    ssize_t sent = send(conn->fd, data, length, MSG_NOSIGNAL);
    if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) return NGHTTP2_ERR_WOULDBLOCK;
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return sent;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
    (void)flags, (void)user_data;
    call_t *call = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (!call) return 0;
    if (namelen == 7 && !memcmp(name, ":status", 7))
        call->http_ok = valuelen == 3 && !memcmp(value, "200", 3);
    else if (namelen == 11 && !memcmp(name, "grpc-status", 11))
        call->grpc_ok = valuelen == 1 && value[0] == '0';
    return 0;
}

static int on_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                    void *user_data) {
    (void)user_data;
    call_t *call = nghttp2_session_get_stream_user_data(session, stream_id);
    if (!call) return 0;
    double ended = now();
    in_flight--;
    if (call->started >= measure_from && ended <= measure_until) {
        if (error_code == 0 && call->http_ok && call->grpc_ok) {
            if (n_latencies == cap_latencies)
                latencies = realloc(latencies, (cap_latencies *= 2) * sizeof *latencies);
            latencies[n_latencies++] = ended - call->started;
        } else {
            errors++;
        }
    }
    conn_t *conn = call->conn;
    free(call);
    if (ended < measure_until) start_call(conn);
    return 0;
}

static void connect_to(conn_t *conn, const char *host, const char *port,
                       nghttp2_session_callbacks *callbacks) {
    struct addrinfo hints = {0}, *found;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, port, &hints, &found) != 0) die("getaddrinfo");
    conn->fd = socket(found->ai_family, found->ai_socktype, found->ai_protocol);
    if (conn->fd < 0) die("socket");
    if (connect(conn->fd, found->ai_addr, found->ai_addrlen) != 0) die("connect");
    freeaddrinfo(found);
    int one = 1;
    setsockopt(conn->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(conn->fd, F_SETFL, fcntl(conn->fd, F_GETFL) | O_NONBLOCK);
    if (nghttp2_session_client_new(&conn->session, callbacks, conn) != 0) die("session");
    nghttp2_settings_entry settings[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20},
    };
    nghttp2_submit_settings(conn->session, NGHTTP2_FLAG_NONE, settings, 2);
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: %s HOST PORT PATH BODIES CONNECTIONS IN_FLIGHT WARMUP_S "
                        "DURATION_S OUT\n", argv[0]);
        return 2;
    }
    const char *host = argv[1], *port = argv[2];
    method_path = argv[3];
    snprintf(authority, sizeof authority, "%s:%s", host, port);
    load_bodies(argv[4]);
    int n_conns = atoi(argv[5]), wanted = atoi(argv[6]);
    double warmup = atof(argv[7]), duration = atof(argv[8]);
    if (n_conns < 1 || wanted < n_conns) {
        fprintf(stderr, "need 1 <= CONNECTIONS <= IN_FLIGHT\n");
        return 2;
    }
    cap_latencies = 1 << 20;
    latencies = malloc(cap_latencies * sizeof *latencies);

    nghttp2_session_callbacks *callbacks;
    nghttp2_session_callbacks_new(&callbacks);
    nghttp2_session_callbacks_set_send_callback(callbacks, on_send);
    nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_close);

    conn_t *conns = calloc((size_t)n_conns, sizeof *conns);
    for (int i = 0; i < n_conns; i++) connect_to(&conns[i], host, port, callbacks);
    double started = now();
    measure_from = started + warmup;
    measure_until = measure_from + duration;
    for (int i = 0; i < wanted; i++) start_call(&conns[i % n_conns]);

    struct pollfd *polls = calloc((size_t)n_conns, sizeof *polls);
    static uint8_t buffer[1 << 16];
    while (in_flight > 0 && now() < measure_until + 30) {
        for (int i = 0; i < n_conns; i++) {
            if (nghttp2_session_send(conns[i].session) != 0) die("HTTP/2 send");
            polls[i].fd = conns[i].fd;
            polls[i].events = (short)(POLLIN | (nghttp2_session_want_write(conns[i].session)
                                                    ? POLLOUT : 0));
        }
        if (poll(polls, (nfds_t)n_conns, 100) < 0 && errno != EINTR) die("poll");
        for (int i = 0; i < n_conns; i++) {
            if (!(polls[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            for (;;) {
                ssize_t got = recv(conns[i].fd, buffer, sizeof buffer, 0);
                if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
                if (got <= 0) {
                    fprintf(stderr, "the server closed connection %d\n", i);
                    return 1;
                }
                if (nghttp2_session_mem_recv(conns[i].session, buffer, (size_t)got) < 0) {
                    fprintf(stderr, "HTTP/2 protocol error on connection %d\n", i);
                    return 1;
                }
            }
        }
    }
    FILE *out = fopen(argv[9], "wb");
    if (!out) die(argv[9]);
    fwrite(latencies, sizeof *latencies, n_latencies, out);
    fclose(out);
    printf("{\"requests\": %zu, \"errors\": %ld, \"seconds\": %.3f, \"unfinished\": %ld}\n",
           n_latencies, errors, duration, in_flight);
    return 0;
}

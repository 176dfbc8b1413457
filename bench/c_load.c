// The bench's load in C: the echo peer's datagrams and the generator's UDP clients. A proxy's added
// latency is read against what the load tools themselves add: a generator and an echo peer in Deno (each
// a runtime with threads of its own on the same 2 cores) put the direct path's one-way p99 at 0.28 ms, which
// hid every proxy's tail under theirs. Signalling and ICE set-up stay in TypeScript (bench/peer.ts,
// bench/gen.ts); this program carries the packets, laid out as bench/stamps.ts says (times big-endian
// float64 milliseconds on CLOCK_REALTIME, receive times the kernel's), and answers the ICE checks that come
// to the peer (RFC 8489 Binding, signed and fingerprinted) so that a proxy's Janus leg keeps its consent.
//   c_load echo <ufrag> <pwd>   prints "ECHO <port>"; each stdin line "bind" binds another socket (a Janus
//                               handle's port), answered "PORT <port>"; ends at stdin's end
//   c_load gen <size> <burst> <gso 0|1> <paced up to> <fd>:<set>:<index>:<port>...
//                               drives the inherited client sockets (ICE done by gen.ts), each sending to
//                               127.0.0.1:<port>; stdin commands, one line each:
//                                 send <set> <rate> <ms>   -> "SENT <count>"
//                                 reset <set>              (a new step: the set's echoes forgotten)
//                                 stats <set>              -> "STATS <json>" (the set's echoes since reset)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define BATCH 64
#define MAX_DATAGRAM 2048
#define CONTROL 64
#define STAMPED_BYTES 32
#define STAMP_CLIENT_SENT 8
#define STAMP_PEER_RECEIVED 16
#define STAMP_PEER_SENT 24

// ---- clocks and stamps ----

static double wall_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void sleep_until_ns(uint64_t at) {
  struct timespec t = {.tv_sec = at / 1000000000ull, .tv_nsec = at % 1000000000ull};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {}
}

static void put_f64(uint8_t *p, double v) {
  uint64_t u;
  memcpy(&u, &v, 8);
  for (int i = 7; i >= 0; i--, u >>= 8) p[i] = (uint8_t)u;
}

static double get_f64(const uint8_t *p) {
  uint64_t u = 0;
  for (int i = 0; i < 8; i++) u = u << 8 | p[i];
  double v;
  memcpy(&v, &u, 8);
  return v;
}

static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

/** The kernel's receive time of a datagram (SO_TIMESTAMPNS), in wall milliseconds; NaN without one. */
static double received_at(struct msghdr *h) {
  for (struct cmsghdr *c = CMSG_FIRSTHDR(h); c; c = CMSG_NXTHDR(h, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
      struct timespec t;
      memcpy(&t, CMSG_DATA(c), sizeof t);
      return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
    }
  }
  return NAN;
}

// ---- receive batches ----

static uint8_t rx_data[BATCH][MAX_DATAGRAM];
static uint8_t rx_control[BATCH][CONTROL];
static struct sockaddr_in rx_from[BATCH];
static struct iovec rx_iov[BATCH];
static struct mmsghdr rx[BATCH];

static int receive_batch(int fd) {
  for (int i = 0; i < BATCH; i++) {
    rx_iov[i] = (struct iovec){.iov_base = rx_data[i], .iov_len = MAX_DATAGRAM};
    rx[i].msg_hdr = (struct msghdr){
        .msg_name = &rx_from[i],
        .msg_namelen = sizeof rx_from[i],
        .msg_iov = &rx_iov[i],
        .msg_iovlen = 1,
        .msg_control = rx_control[i],
        .msg_controllen = CONTROL,
    };
  }
  return recvmmsg(fd, rx, BATCH, MSG_DONTWAIT, NULL);
}

static int udp_socket(void) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int size = 8 << 20, one = 1;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int local_port(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  getsockname(fd, (struct sockaddr *)&a, &len);
  return ntohs(a.sin_port);
}

// ---- SHA-1 (FIPS 180-4), HMAC (RFC 2104) and CRC-32: STUN's MESSAGE-INTEGRITY and FINGERPRINT ----

struct sha1 {
  uint32_t h[5];
  uint64_t bytes;
  uint8_t block[64];
};

static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1_block(uint32_t h[5], const uint8_t *p) {
  uint32_t w[80];
  for (int i = 0; i < 16; i++) w[i] = get_u32(p + 4 * i);
  for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
  for (int i = 0; i < 80; i++) {
    uint32_t f, k;
    if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
    else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
    else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
    else f = b ^ c ^ d, k = 0xCA62C1D6;
    uint32_t t = rol(a, 5) + f + e + k + w[i];
    e = d, d = c, c = rol(b, 30), b = a, a = t;
  }
  h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1_init(struct sha1 *s) {
  static const uint32_t iv[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
  memcpy(s->h, iv, sizeof iv);
  s->bytes = 0;
}

static void sha1_update(struct sha1 *s, const uint8_t *p, size_t n) {
  while (n > 0) {
    size_t at = s->bytes % 64, take = 64 - at < n ? 64 - at : n;
    memcpy(s->block + at, p, take);
    s->bytes += take, p += take, n -= take;
    if (s->bytes % 64 == 0) sha1_block(s->h, s->block);
  }
}

static void sha1_final(struct sha1 *s, uint8_t out[20]) {
  uint64_t bits = s->bytes * 8;
  uint8_t pad = 0x80, zero = 0, length[8];
  sha1_update(s, &pad, 1);
  while (s->bytes % 64 != 56) sha1_update(s, &zero, 1);
  for (int i = 0; i < 8; i++) length[i] = (uint8_t)(bits >> (56 - 8 * i));
  sha1_update(s, length, 8);
  for (int i = 0; i < 5; i++) put_u32(out + 4 * i, s->h[i]);
}

/** HMAC-SHA1 with a key of at most 64 bytes (an ICE password; longer ones are refused at start). */
static void hmac_sha1(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t n, uint8_t out[20]) {
  uint8_t pad[64], inner[20];
  struct sha1 s;
  for (int i = 0; i < 64; i++) pad[i] = (i < (int)key_len ? key[i] : 0) ^ 0x36;
  sha1_init(&s);
  sha1_update(&s, pad, 64);
  sha1_update(&s, msg, n);
  sha1_final(&s, inner);
  for (int i = 0; i < 64; i++) pad[i] ^= 0x36 ^ 0x5c;
  sha1_init(&s);
  sha1_update(&s, pad, 64);
  sha1_update(&s, inner, 20);
  sha1_final(&s, out);
}

static uint32_t crc32(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFF;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = c >> 1 ^ (0xEDB88320 & -(c & 1));
  }
  return ~c;
}

// ---- the echo peer ----

#define STUN_HEADER 20
#define STUN_COOKIE 0x2112A442u
#define BINDING_REQUEST 0x0001
#define BINDING_SUCCESS 0x0101
#define ATTR_USERNAME 0x0006
#define ATTR_INTEGRITY 0x0008
#define ATTR_XOR_MAPPED 0x0020
#define ATTR_FINGERPRINT 0x8028
#define FINGERPRINT_XOR 0x5354554eu
#define RESPONSE_BYTES (STUN_HEADER + 12 + 24 + 8)

static const char *ice_ufrag, *ice_pwd;

/** A Binding request for this peer's ufrag with a valid MESSAGE-INTEGRITY (RFC 8489 §14.5: the HMAC
 * covers the message up to the attribute, with the header's length as if it ended after it). */
static int authentic_check(uint8_t *m, int len) {
  if (len < STUN_HEADER || (m[0] & 0xC0) || get_u32(m + 4) != STUN_COOKIE) return 0;
  if ((m[0] << 8 | m[1]) != BINDING_REQUEST || STUN_HEADER + (m[2] << 8 | m[3]) != len) return 0;
  int named = 0;
  for (int at = STUN_HEADER; at + 4 <= len;) {
    int type = m[at] << 8 | m[at + 1], size = m[at + 2] << 8 | m[at + 3];
    if (at + 4 + size > len) return 0;
    if (type == ATTR_USERNAME) {
      size_t u = strlen(ice_ufrag);
      named = (size_t)size > u && memcmp(m + at + 4, ice_ufrag, u) == 0 && m[at + 4 + u] == ':';
    } else if (type == ATTR_INTEGRITY && size == 20) {
      uint8_t saved[2] = {m[2], m[3]}, mac[20];
      int covered = at + 24 - STUN_HEADER;
      m[2] = covered >> 8, m[3] = covered;
      hmac_sha1((const uint8_t *)ice_pwd, strlen(ice_pwd), m, at, mac);
      m[2] = saved[0], m[3] = saved[1];
      return named && memcmp(mac, m + at + 4, 20) == 0;
    }
    at += 4 + ((size + 3) & ~3);
  }
  return 0;
}

/** The success response to a check from `from`: XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY, FINGERPRINT. */
static void binding_success(const uint8_t *request, const struct sockaddr_in *from, uint8_t *out) {
  memset(out, 0, RESPONSE_BYTES);
  out[0] = BINDING_SUCCESS >> 8, out[1] = BINDING_SUCCESS & 0xff;
  memcpy(out + 4, request + 4, 16); // cookie and transaction id
  uint8_t *x = out + STUN_HEADER;
  x[1] = ATTR_XOR_MAPPED, x[3] = 8, x[5] = 0x01;
  uint16_t port = ntohs(from->sin_port) ^ (STUN_COOKIE >> 16);
  x[6] = port >> 8, x[7] = port;
  put_u32(x + 8, ntohl(from->sin_addr.s_addr) ^ STUN_COOKIE);
  uint8_t *mi = x + 12;
  out[3] = 12 + 24;
  mi[1] = ATTR_INTEGRITY, mi[3] = 20;
  hmac_sha1((const uint8_t *)ice_pwd, strlen(ice_pwd), out, mi - out, mi + 4);
  uint8_t *fp = mi + 24;
  out[3] = 12 + 24 + 8;
  fp[0] = ATTR_FINGERPRINT >> 8, fp[1] = ATTR_FINGERPRINT & 0xff, fp[3] = 4;
  put_u32(fp + 4, crc32(out, fp - out) ^ FINGERPRINT_XOR);
}

static uint8_t responses[BATCH][RESPONSE_BYTES];
static struct iovec tx_iov[BATCH];
static struct mmsghdr tx[BATCH];

/** Echoes what `fd` has queued, each media datagram stamped (received, sent) and sent back to its source;
 * answers authentic checks; drops the rest. */
static void echo(int fd) {
  for (int round = 0; round < 8; round++) {
    int got = receive_batch(fd);
    if (got <= 0) return;
    int out = 0;
    for (int i = 0; i < got; i++) {
      uint8_t *d = rx_data[i];
      int len = rx[i].msg_len;
      if (len > 0 && d[0] > 3) {
        if (len >= STAMPED_BYTES) put_f64(d + STAMP_PEER_RECEIVED, received_at(&rx[i].msg_hdr));
        tx_iov[out] = (struct iovec){.iov_base = d, .iov_len = len};
      } else if (authentic_check(d, len)) {
        binding_success(d, &rx_from[i], responses[out]);
        tx_iov[out] = (struct iovec){.iov_base = responses[out], .iov_len = RESPONSE_BYTES};
      } else continue;
      tx[out].msg_hdr = (struct msghdr){
          .msg_name = &rx_from[i], .msg_namelen = sizeof rx_from[i], .msg_iov = &tx_iov[out], .msg_iovlen = 1};
      out++;
    }
    double now = wall_ms();
    for (int i = 0; i < out; i++) {
      uint8_t *d = tx_iov[i].iov_base;
      if (d[0] > 3 && tx_iov[i].iov_len >= STAMPED_BYTES) put_f64(d + STAMP_PEER_SENT, now);
    }
    for (int sent = 0; sent < out;) {
      int n = sendmmsg(fd, tx + sent, out - sent, 0);
      if (n <= 0) break; // a full buffer drops the rest, as a UDP peer would
      sent += n;
    }
    if (got < BATCH) return;
  }
}

static int epfd;

static void watch(int fd) {
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static char stdin_buf[4096];
static size_t stdin_used;

/** Reads what stdin has (one read: it is readable); 0 at its end. */
static int read_stdin(void) {
  if (stdin_used == sizeof stdin_buf) stdin_used = 0; // an overlong line is dropped
  ssize_t r = read(0, stdin_buf + stdin_used, sizeof stdin_buf - stdin_used);
  if (r <= 0) return 0;
  stdin_used += r;
  return 1;
}

/** The next complete line read from stdin into `line`; 0 when there is none yet. */
static int next_line(char *line, size_t size) {
  char *nl = memchr(stdin_buf, '\n', stdin_used);
  if (!nl) return 0;
  size_t n = nl - stdin_buf, copy = n < size - 1 ? n : size - 1;
  memcpy(line, stdin_buf, copy);
  line[copy] = 0;
  memmove(stdin_buf, nl + 1, stdin_used - n - 1);
  stdin_used -= n + 1;
  return 1;
}

/** Until stdin ends: each socket epoll reports to `on_socket`, each line of stdin to `on_line`. */
static int serve(void (*on_socket)(int fd), void (*on_line)(const char *line)) {
  struct epoll_event events[64];
  char line[256];
  for (;;) {
    int n = epoll_wait(epfd, events, 64, -1);
    if (n < 0 && errno != EINTR) return perror("epoll_wait"), 1;
    for (int e = 0; e < n; e++) {
      int fd = events[e].data.fd;
      if (fd != 0) on_socket(fd);
      else if (!read_stdin()) return 0;
      else while (next_line(line, sizeof line)) on_line(line);
    }
  }
}

/** The echo's first socket: where sessions beyond what it can bind are sent. */
static int first;

/** "bind": another socket, answered with its port. */
static void echo_command(const char *line) {
  if (strcmp(line, "bind") != 0) return;
  int s = udp_socket();
  if (s >= 0) watch(s);
  printf("PORT %d\n", s >= 0 ? local_port(s) : local_port(first));
  fflush(stdout);
}

static int run_echo(void) {
  if (strlen(ice_pwd) > 64) {
    fprintf(stderr, "c_load: an ICE password of more than 64 bytes\n");
    return 2;
  }
  // A socket per Janus handle, as many as the held-sessions scenario makes.
  struct rlimit files;
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    files.rlim_cur = files.rlim_max;
    setrlimit(RLIMIT_NOFILE, &files);
  }
  epfd = epoll_create1(EPOLL_CLOEXEC);
  first = udp_socket();
  if (first < 0) return perror("socket"), 1;
  watch(first);
  watch(0);
  printf("ECHO %d\n", local_port(first));
  fflush(stdout);
  return serve(echo, echo_command);
}

// ---- the generator's clients ----

#define MAX_CLIENTS 256
#define MAX_SETS 4
#define MAX_SAMPLES 4000000

struct client {
  int fd, set, index;
  struct sockaddr_in to;
  uint32_t last_seq;
};

struct samples {
  long received, reordered, foreign;
  double *rtts, *legs;
  long rtt_count, leg_count;
};

static struct client clients[MAX_CLIENTS];
static int client_count;
static struct samples sets[MAX_SETS];
static int size, burst, gso;
static double paced_up_to;
static uint32_t seq;

static void add(double *values, long *count, double v) {
  if (isnan(v) || *count >= MAX_SAMPLES) return;
  values[(*count)++] = v;
}

static struct client *client_of_fd(int fd) {
  for (int i = 0; i < client_count; i++) if (clients[i].fd == fd) return &clients[i];
  return NULL;
}

/** Reads a client's echoes: loss, order, cross-talk, and the trip each way to the kernel's receive time. */
static void collect(int fd) {
  struct client *c = client_of_fd(fd);
  if (!c) return;
  struct samples *s = &sets[c->set];
  for (;;) {
    int got = receive_batch(fd);
    if (got <= 0) return;
    for (int i = 0; i < got; i++) {
      const uint8_t *d = rx_data[i];
      if ((int)rx[i].msg_len < STAMPED_BYTES || d[0] <= 3) continue; // STUN: ICE was gen.ts's
      if (d[1] != c->index) {
        s->foreign++;
        continue;
      }
      uint32_t echoed = get_u32(d + 2);
      if (echoed < c->last_seq) s->reordered++;
      else c->last_seq = echoed;
      double arrived = received_at(&rx[i].msg_hdr), sent = get_f64(d + STAMP_CLIENT_SENT);
      s->received++;
      add(s->rtts, &s->rtt_count, arrived - sent);
      add(s->legs, &s->leg_count, get_f64(d + STAMP_PEER_RECEIVED) - sent);
      add(s->legs, &s->leg_count, arrived - get_f64(d + STAMP_PEER_SENT));
    }
    if (got < BATCH) return;
  }
}

/** Reads whatever echoes are queued now, without waiting. */
static void collect_ready(void) {
  struct epoll_event events[MAX_CLIENTS];
  int n = epoll_wait(epfd, events, MAX_CLIENTS, 0);
  for (int e = 0; e < n; e++) if (events[e].data.fd != 0) collect(events[e].data.fd);
}

static uint8_t tx_data[BATCH][MAX_DATAGRAM];
static uint8_t gso_control[CMSG_SPACE(sizeof(uint16_t))];

/** `count` packets to client `c` (a burst), stamped now; one GSO send when asked. */
static void send_burst(struct client *c, int count) {
  double now = wall_ms();
  for (int i = 0; i < count; i++) {
    uint8_t *p = tx_data[i];
    p[0] = 0x80, p[1] = c->index;
    put_u32(p + 2, ++seq);
    put_f64(p + STAMP_CLIENT_SENT, now);
  }
  if (gso && count > 1) {
    // The burst's packets lie back to back: one iovec each, one datagram each on the wire.
    for (int i = 0; i < count; i++) tx_iov[i] = (struct iovec){.iov_base = tx_data[i], .iov_len = size};
    struct msghdr h = {
        .msg_name = &c->to,
        .msg_namelen = sizeof c->to,
        .msg_iov = tx_iov,
        .msg_iovlen = count,
        .msg_control = gso_control,
        .msg_controllen = sizeof gso_control,
    };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&h);
    cm->cmsg_level = SOL_UDP, cm->cmsg_type = UDP_SEGMENT, cm->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t segment = size;
    memcpy(CMSG_DATA(cm), &segment, sizeof segment);
    sendmsg(c->fd, &h, 0);
    return;
  }
  for (int i = 0; i < count; i++) {
    tx_iov[i] = (struct iovec){.iov_base = tx_data[i], .iov_len = size};
    tx[i].msg_hdr = (struct msghdr){
        .msg_name = &c->to, .msg_namelen = sizeof c->to, .msg_iov = &tx_iov[i], .msg_iovlen = 1};
  }
  for (int sent = 0; sent < count;) {
    int n = sendmmsg(c->fd, tx + sent, count - sent, 0);
    if (n <= 0) break;
    sent += n;
  }
}

/** As gen.ts's sendAt: `rate` packets a second to the set's clients for `ms`, bursts of `burst` round
 * robin; up to the paced rate each burst at its own time, 1/rate apart, above it each millisecond's
 * packets together. Echoes are read between sends. The count sent. */
static long send_at(int set, double rate, double ms) {
  struct client *members[MAX_CLIENTS];
  int n = 0;
  for (int i = 0; i < client_count; i++) if (clients[i].set == set) members[n++] = &clients[i];
  long total = (long)floor(ms * rate / 1000), sent = 0;
  if (n == 0) return 0;
  int paced = rate <= paced_up_to;
  uint64_t t0 = mono_ns();
  for (uint64_t tick = 1; sent < total; tick++) {
    long due;
    if (paced) {
      // The next burst, at its own time.
      sleep_until_ns(t0 + (uint64_t)(sent * 1e9 / rate));
      due = sent + burst - sent % burst;
    } else {
      sleep_until_ns(t0 + tick * 1000000ull);
      due = (long)floor((mono_ns() - t0) / 1e6 * rate / 1000);
    }
    if (due > total) due = total;
    while (sent < due) {
      // A burst (of at most BATCH) to one client, then the next client.
      int count = burst - (int)(sent % burst);
      if (count > BATCH) count = BATCH;
      if (count > due - sent) count = due - sent;
      send_burst(members[(sent / burst) % n], count);
      sent += count;
    }
    collect_ready();
  }
  return sent;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/** Percentile p of values (sorted in place), as gen.ts's percentiles(); JSON null when there are none. */
static void print_percentile(const char *name, double *values, long n, double p) {
  if (n == 0) {
    printf("\"%s\":null", name);
    return;
  }
  long i = (long)floor(n * p);
  printf("\"%s\":%.6f", name, values[i < n - 1 ? i : n - 1]);
}

static void print_stats(int set) {
  struct samples *s = &sets[set];
  qsort(s->rtts, s->rtt_count, sizeof(double), cmp_double);
  qsort(s->legs, s->leg_count, sizeof(double), cmp_double);
  printf("STATS {\"received\":%ld,\"reordered\":%ld,\"foreign\":%ld,", s->received, s->reordered, s->foreign);
  const double ps[3] = {0.5, 0.99, 0.999};
  const char *rtt[3] = {"rttP50", "rttP99", "rttP999"}, *leg[3] = {"oneWayP50", "oneWayP99", "oneWayP999"};
  for (int i = 0; i < 3; i++) print_percentile(rtt[i], s->rtts, s->rtt_count, ps[i]), printf(",");
  for (int i = 0; i < 3; i++) print_percentile(leg[i], s->legs, s->leg_count, ps[i]), printf(i < 2 ? "," : "");
  printf("}\n");
  fflush(stdout);
}

/** One of gen.ts's commands (the header lists them). */
static void command(const char *line) {
  int set;
  double rate, ms;
  if (sscanf(line, "send %d %lf %lf", &set, &rate, &ms) == 3 && set >= 0 && set < MAX_SETS) {
    printf("SENT %ld\n", send_at(set, rate, ms));
    fflush(stdout);
  } else if (sscanf(line, "stats %d", &set) == 1 && set >= 0 && set < MAX_SETS) {
    print_stats(set);
  } else if (sscanf(line, "reset %d", &set) == 1 && set >= 0 && set < MAX_SETS) {
    struct samples *s = &sets[set];
    s->received = s->reordered = s->foreign = s->rtt_count = s->leg_count = 0;
    for (int i = 0; i < client_count; i++) if (clients[i].set == set) clients[i].last_seq = 0;
  }
}

static int run_gen(int argc, char **argv) {
  size = atoi(argv[2]), burst = atoi(argv[3]), gso = atoi(argv[4]), paced_up_to = atof(argv[5]);
  if (size < STAMPED_BYTES || size > MAX_DATAGRAM || burst < 1) return fprintf(stderr, "c_load: bad size or burst\n"), 2;
  // The kernel may otherwise wake a sleeper up to 50 µs late, as long as the gaps paced here.
  prctl(PR_SET_TIMERSLACK, 1);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  for (int i = 6; i < argc && client_count < MAX_CLIENTS; i++) {
    struct client *c = &clients[client_count++];
    int port;
    if (sscanf(argv[i], "%d:%d:%d:%d", &c->fd, &c->set, &c->index, &port) != 4 || c->set < 0 || c->set >= MAX_SETS) {
      return fprintf(stderr, "c_load: bad client %s\n", argv[i]), 2;
    }
    c->to = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
    watch(c->fd);
  }
  for (int i = 0; i < MAX_SETS; i++) {
    sets[i].rtts = malloc(MAX_SAMPLES * sizeof(double));
    sets[i].legs = malloc(MAX_SAMPLES * sizeof(double));
  }
  watch(0);
  printf("GEN %d\n", client_count);
  fflush(stdout);
  return serve(collect, command);
}

int main(int argc, char **argv) {
  if (argc == 4 && strcmp(argv[1], "echo") == 0) {
    ice_ufrag = argv[2], ice_pwd = argv[3];
    return run_echo();
  }
  if (argc >= 6 && strcmp(argv[1], "gen") == 0) return run_gen(argc, argv);
  fprintf(stderr, "usage: c_load echo <ufrag> <pwd> | c_load gen <size> <burst> <gso> <paced up to> <fd>:<set>:<index>:<port>...\n");
  return 2;
}

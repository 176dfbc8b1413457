// The bench's ceiling: a bare UDP relay in C with the same shape as bench/relay.ts (receive -> send and
// nothing else; each client source gets its own upstream socket), batched with recvmmsg/sendmmsg on one
// epoll loop. The bench builds it with the machine's gcc and reads every xRTC figure as a ratio to it.
//   c_relay <listen port> <peer port> [reuseport]      prints "RELAY" when ready
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAX_CLIENTS 1024
#define MAX_DATAGRAM 2048

struct client {
  struct sockaddr_in addr;
  int upstream;
};

static struct client clients[MAX_CLIENTS];
static int nclients;
static int epfd;
static struct sockaddr_in peer;

static int udp_socket(int port, int reuseport) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  if (fd < 0) { perror("socket"); exit(1); }
  int size = 8 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (reuseport) {
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  }
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
  epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
  return fd;
}

static struct client *client_of(const struct sockaddr_in *from) {
  for (int i = 0; i < nclients; i++) {
    if (clients[i].addr.sin_port == from->sin_port && clients[i].addr.sin_addr.s_addr == from->sin_addr.s_addr) {
      return &clients[i];
    }
  }
  if (nclients == MAX_CLIENTS) { fprintf(stderr, "c_relay: more than %d clients\n", MAX_CLIENTS); exit(1); }
  struct client *c = &clients[nclients++];
  c->addr = *from;
  c->upstream = udp_socket(0, 0);
  return c;
}

static struct client *client_by_upstream(int fd) {
  for (int i = 0; i < nclients; i++) if (clients[i].upstream == fd) return &clients[i];
  return NULL;
}

static char bufs[BATCH][MAX_DATAGRAM];
static struct iovec iovs[BATCH];
static struct sockaddr_in addrs[BATCH];
static struct mmsghdr msgs[BATCH];

static int receive(int fd) {
  for (int i = 0; i < BATCH; i++) {
    iovs[i] = (struct iovec){.iov_base = bufs[i], .iov_len = MAX_DATAGRAM};
    msgs[i].msg_hdr = (struct msghdr){
        .msg_name = &addrs[i], .msg_namelen = sizeof addrs[i], .msg_iov = &iovs[i], .msg_iovlen = 1};
  }
  return recvmmsg(fd, msgs, BATCH, MSG_DONTWAIT, NULL);
}

/** Sends msgs[from..to) on fd, each to its msg_name, in as few calls as the kernel takes. */
static void send_all(int fd, int from, int to) {
  while (from < to) {
    int n = sendmmsg(fd, &msgs[from], to - from, 0);
    if (n <= 0) return; // a full buffer drops the rest, as any UDP relay would
    from += n;
  }
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: c_relay <listen port> <peer port> [reuseport]\n"); return 2; }
  epfd = epoll_create1(0);
  int front = udp_socket(atoi(argv[1]), argc > 3 && strcmp(argv[3], "reuseport") == 0);
  peer = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
  inet_pton(AF_INET, "127.0.0.1", &peer.sin_addr);
  printf("RELAY\n");
  fflush(stdout);
  struct epoll_event events[64];
  for (;;) {
    int n = epoll_wait(epfd, events, 64, -1);
    if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
    for (int e = 0; e < n; e++) {
      int fd = events[e].data.fd;
      for (;;) {
        int got = receive(fd);
        if (got <= 0) break;
        if (fd == front) {
          // Client -> peer, through the client's own upstream socket: the batch is regrouped by client so
          // that each client's packets leave in one sendmmsg, however the clients interleave.
          static struct mmsghdr grouped[BATCH];
          static struct client *owner[BATCH];
          for (int i = 0; i < got; i++) {
            iovs[i].iov_len = msgs[i].msg_len;
            owner[i] = client_of(&addrs[i]);
            addrs[i] = peer;
            msgs[i].msg_hdr.msg_namelen = sizeof peer;
          }
          for (int i = 0; i < got; i++) {
            if (!owner[i]) continue;
            struct client *c = owner[i];
            int n = 0;
            for (int j = i; j < got; j++) {
              if (owner[j] != c) continue;
              grouped[n++] = msgs[j];
              owner[j] = NULL;
            }
            int sent = 0;
            while (sent < n) {
              int k = sendmmsg(c->upstream, &grouped[sent], n - sent, 0);
              if (k <= 0) break;
              sent += k;
            }
          }
        } else {
          // Peer -> the client this upstream socket belongs to.
          struct client *c = client_by_upstream(fd);
          if (!c) break;
          for (int i = 0; i < got; i++) {
            iovs[i].iov_len = msgs[i].msg_len;
            addrs[i] = c->addr;
            msgs[i].msg_hdr.msg_namelen = sizeof c->addr;
          }
          send_all(front, 0, got);
        }
        if (got < BATCH) break;
      }
    }
  }
}

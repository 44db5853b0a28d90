/* The kernel's own limit: a minimal non-blocking connect loop over epoll, with no other work.
 * Reads IPv4 addresses (one per line) from stdin, connects each to PORT with at most
 * CONCURRENCY sockets open and TIMEOUT_MS per connect, closes at once, and prints
 * "ADDR up|refused|timeout|error" per address. Benchmark reference only. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct { int fd; int idx; long long started; } slot_t;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv) {
  if (argc != 4) { fprintf(stderr, "usage: %s PORT CONCURRENCY TIMEOUT_MS < addrs\n", argv[0]); return 2; }
  int port = atoi(argv[1]), cap = atoi(argv[2]), timeout_ms = atoi(argv[3]);
  size_t n = 0, room = 1 << 16;
  struct in_addr *addrs = malloc(room * sizeof *addrs);
  char line[128];
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\r\n")] = 0;
    if (!*line) continue;
    if (n == room) addrs = realloc(addrs, (room *= 2) * sizeof *addrs);
    if (inet_pton(AF_INET, line, &addrs[n]) == 1) n++;
  }
  const char **status = calloc(n, sizeof *status);
  /* Open sockets in start order: with one timeout for all, the oldest is always at the head. */
  slot_t *ring = calloc(cap, sizeof *ring);
  int *slot_of_fd = malloc(sizeof(int) * (cap + 1024));
  size_t head = 0, count = 0, next = 0, done = 0;
  int ep = epoll_create1(0);
  struct epoll_event events[1024];
  while (done < n) {
    while (count < (size_t)cap && next < n) {
      int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
      if (fd < 0) { perror("socket"); return 1; }
      struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port), .sin_addr = addrs[next] };
      int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
      if (rc == 0 || errno != EINPROGRESS) {
        status[next] = rc == 0 ? "up" : (errno == ECONNREFUSED ? "refused" : "error");
        close(fd); next++; done++; continue;
      }
      size_t pos = (head + count) % cap;
      ring[pos] = (slot_t){ fd, (int)next, now_ms() };
      slot_of_fd[fd] = (int)pos;
      struct epoll_event ev = { .events = EPOLLOUT, .data.fd = fd };
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      count++; next++;
    }
    int wait = count ? (int)(ring[head].started + timeout_ms - now_ms()) : 0;
    int got = epoll_wait(ep, events, 1024, wait < 0 ? 0 : wait);
    for (int i = 0; i < got; i++) {
      int fd = events[i].data.fd, err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      slot_t *s = &ring[slot_of_fd[fd]];
      status[s->idx] = err == 0 ? "up" : (err == ECONNREFUSED ? "refused" : "error");
      close(fd); s->fd = -1; done++;
    }
    long long t = now_ms();
    while (count && (ring[head].fd < 0 || ring[head].started + timeout_ms <= t)) {
      if (ring[head].fd >= 0) { status[ring[head].idx] = "timeout"; close(ring[head].fd); done++; }
      head = (head + 1) % cap; count--;
    }
  }
  char buf[INET_ADDRSTRLEN];
  for (size_t i = 0; i < n; i++) printf("%s %s\n", inet_ntop(AF_INET, &addrs[i], buf, sizeof buf), status[i]);
  return 0;
}

// udp_batch: Linux UDP sockets for the data plane, batched. Node's dgram costs one syscall, one JS callback,
// one Buffer and one rinfo object per datagram; nginx and Envoy read and write many datagrams per syscall.
// This addon does the same and nothing else:
//  - one receive ring per process (JS owns the memory, passes it once to setup()). Every readable socket
//    of an event-loop turn reads into it with recvmmsg (poll phase); ONE JS call (from a uv_check handle
//    right after the poll phase, or earlier when the ring is full) then hands over everything read, with
//    the socket id, length, offset, source port, family and address of each datagram in typed arrays (also
//    JS-owned). With one upstream socket per client session that is one JS entry per turn, not one per
//    socket. A consumer that keeps a payload copies it: the ring is reused by the next turn.
//  - UDP GRO where the socket asks for it: one coalesced read is split back into its segments here.
//  - one send queue per process (JS-owned arena + typed arrays, filled by JS, flushed once per event-loop
//    turn): runs of entries for the same socket go out in one sendmmsg, and runs of equal-sized datagrams to
//    the same destination (replication frames to one peer) go as one UDP GSO (UDP_SEGMENT) message.
//  - readiness through libuv's uv_poll_t, so everything stays on Node's event loop (no threads).
//  - every failing syscall is an Error with .code/.syscall (setup) or a counted errno (data path); never an
//    abort. Counters live in a JS-owned Float64Array read at scrape time.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

// Counter slots (mirrored in replicator/io/native.ts).
enum {
  C_RECV_CALLS, C_RECV_DATAGRAMS, C_RECV_GRO_SPLITS, C_RECV_ERRORS, C_RECV_TRUNCATED,
  C_SEND_CALLS, C_SEND_DATAGRAMS, C_SEND_GSO_MESSAGES, C_SEND_ERRORS, C_SEND_WOULDBLOCK,
  C_GSO_DISABLED, C_CALLBACKS, C_COUNT
};

#define MAX_BATCH 64          // datagrams per recvmmsg / sendmmsg
#define MAX_GSO_SEGS 64       // kernel limit (UDP_MAX_SEGMENTS)
#define MAX_GSO_BYTES 65000   // below the 64 KiB IP payload limit
#define READS_PER_WAKEUP 8    // batches per poll callback before yielding to the rest of the loop

typedef struct {
  uint8_t *data;
  size_t len;
} span_t;

typedef struct sock_s {
  uv_poll_t poll;
  int fd;
  int family;
  int id;
  int gro;
  int closing;
  int connected;
  napi_ref on_error;
  napi_async_context async;
} sock_t;

typedef struct {
  napi_env env;
  uv_loop_t *loop;
  int ready;
  // receive ring + outputs
  span_t ring;
  uint32_t slot_size, slots, out_cap;
  uint32_t *r_lengths, *r_offsets;
  uint16_t *r_ports;
  uint8_t *r_families, *r_addrs;
  // send queue
  span_t arena;
  uint32_t q_cap;
  int32_t *q_socks;
  uint32_t *q_offsets, *q_lengths;
  uint16_t *q_ports;
  uint8_t *q_families, *q_addrs;
  int32_t *e_index, *e_code;
  uint32_t e_cap;
  double *counters;
  int32_t *r_socks;
  uint32_t pending, used_slots;  // entries and ring slots filled since the last hand-over
  napi_ref dispatch;
  napi_async_context async;
  uv_check_t check;
  int32_t *quarantine;  // ids closed while entries were pending: not reused until handed over
  int nquarantine, capquarantine;
  napi_ref keep[24];
  int nkeep;
  int gso_ok;
  sock_t **socks;
  int nsocks;
} state_t;

static state_t G;
static sock_t CLOSED_PENDING;  // marks an id closed while entries for it wait to be handed over

// ------------------------------------------------------------------ helpers

static napi_value throw_errno(napi_env env, int err, const char *syscall) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: %s", syscall, strerror(err));
  napi_value code, message, error, sc;
  const char *name = NULL;
  switch (err) {
    case EADDRINUSE: name = "EADDRINUSE"; break;
    case EADDRNOTAVAIL: name = "EADDRNOTAVAIL"; break;
    case EACCES: name = "EACCES"; break;
    case EPERM: name = "EPERM"; break;
    case EINVAL: name = "EINVAL"; break;
    case EAFNOSUPPORT: name = "EAFNOSUPPORT"; break;
    case EMFILE: name = "EMFILE"; break;
    case ENFILE: name = "ENFILE"; break;
    case ENOBUFS: name = "ENOBUFS"; break;
    case ENOMEM: name = "ENOMEM"; break;
    case ENETUNREACH: name = "ENETUNREACH"; break;
    case ECONNREFUSED: name = "ECONNREFUSED"; break;
    case EBADF: name = "EBADF"; break;
    default: name = "EIO_OTHER"; break;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &code);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code, message, &error);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &sc);
  napi_set_named_property(env, error, "syscall", sc);
  napi_value errnov;
  napi_create_int32(env, err, &errnov);
  napi_set_named_property(env, error, "errno", errnov);
  napi_throw(env, error);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

static int get_typed(napi_env env, napi_value v, void **data, size_t *bytes) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return 0;
  napi_typedarray_type t;
  size_t length, offset;
  napi_value ab;
  if (napi_get_typedarray_info(env, v, &t, &length, data, &ab, &offset) != napi_ok) return 0;
  size_t el = 1;
  switch (t) {
    case napi_int16_array: case napi_uint16_array: el = 2; break;
    case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
    case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
    default: el = 1;
  }
  *bytes = length * el;
  if (G.nkeep < 24) napi_create_reference(env, v, 1, &G.keep[G.nkeep++]);
  return 1;
}

static sock_t *sock_by_id(napi_env env, napi_value v) {
  int32_t id;
  if (napi_get_value_int32(env, v, &id) != napi_ok || id < 0 || id >= G.nsocks || G.socks[id] == NULL ||
      G.socks[id] == &CLOSED_PENDING || G.socks[id]->closing) {
    napi_throw_error(env, "ERR_SOCKET_CLOSED", "udp_batch: socket is closed or unknown");
    return NULL;
  }
  return G.socks[id];
}

// Fills a sockaddr from family + 16 address bytes + port. A v4 destination from a v6 socket is v4-mapped.
static socklen_t make_addr(int sock_family, int family, const uint8_t *addr, uint16_t port,
                           struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (sock_family == 4) {
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons(port);
    memcpy(&a->sin_addr, addr, 4);
    return sizeof *a;
  }
  struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
  a->sin6_family = AF_INET6;
  a->sin6_port = htons(port);
  if (family == 4) {
    uint8_t *b = a->sin6_addr.s6_addr;
    b[10] = 0xff;
    b[11] = 0xff;
    memcpy(b + 12, addr, 4);
  } else {
    memcpy(a->sin6_addr.s6_addr, addr, 16);
  }
  return sizeof *a;
}

static int parse_addr(napi_env env, napi_value v, int family, uint8_t out[16]) {
  char buf[64];
  size_t n;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &n) != napi_ok) return 0;
  memset(out, 0, 16);
  return inet_pton(family == 6 ? AF_INET6 : AF_INET, buf, out) == 1;
}

// ------------------------------------------------------------------ setup(ring, slotSize, lengths, offsets,
// ports, families, addrs, arena, qSocks, qOffsets, qLengths, qPorts, qFamilies, qAddrs, eIndex, eCode, counters,
// socks, dispatch)

static void on_check(uv_check_t *h);

static napi_value js_setup(napi_env env, napi_callback_info info) {
  size_t argc = 19;
  napi_value a[19];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  if (argc < 19) return throw_type(env, "setup: 19 arguments expected");
  if (G.ready) return throw_type(env, "setup: already set up");
  size_t bytes;
  void *p;
  uint32_t slot;
  if (!get_typed(env, a[0], &p, &bytes)) return throw_type(env, "setup: ring must be a Uint8Array");
  G.ring.data = p;
  G.ring.len = bytes;
  if (napi_get_value_uint32(env, a[1], &slot) != napi_ok || slot < 64) return throw_type(env, "setup: slot size");
  G.slot_size = slot;
  G.slots = (uint32_t)(bytes / slot);
  if (G.slots == 0) return throw_type(env, "setup: ring smaller than one slot");
  if (G.slots > MAX_BATCH) G.slots = MAX_BATCH;
  size_t b2, b3, b4, b5, b6;
  void *p2, *p3, *p4, *p5, *p6;
  if (!get_typed(env, a[2], &p2, &b2) || !get_typed(env, a[3], &p3, &b3) || !get_typed(env, a[4], &p4, &b4) ||
      !get_typed(env, a[5], &p5, &b5) || !get_typed(env, a[6], &p6, &b6))
    return throw_type(env, "setup: receive outputs must be typed arrays");
  G.out_cap = (uint32_t)(b2 / 4);
  if (b3 / 4 < G.out_cap || b4 / 2 < G.out_cap || b5 < G.out_cap || b6 / 16 < G.out_cap || G.out_cap < G.slots)
    return throw_type(env, "setup: receive outputs too small");
  G.r_lengths = p2;
  G.r_offsets = p3;
  G.r_ports = p4;
  G.r_families = p5;
  G.r_addrs = p6;
  if (!get_typed(env, a[7], &p, &bytes)) return throw_type(env, "setup: arena must be a Uint8Array");
  G.arena.data = p;
  G.arena.len = bytes;
  size_t q1, q2, q3, q4, q5, q6, e1, e2, cb;
  void *v1, *v2, *v3, *v4, *v5, *v6, *w1, *w2, *cp;
  if (!get_typed(env, a[8], &v1, &q1) || !get_typed(env, a[9], &v2, &q2) || !get_typed(env, a[10], &v3, &q3) ||
      !get_typed(env, a[11], &v4, &q4) || !get_typed(env, a[12], &v5, &q5) || !get_typed(env, a[13], &v6, &q6) ||
      !get_typed(env, a[14], &w1, &e1) || !get_typed(env, a[15], &w2, &e2) || !get_typed(env, a[16], &cp, &cb))
    return throw_type(env, "setup: send queue arrays must be typed arrays");
  G.q_cap = (uint32_t)(q1 / 4);
  if (q2 / 4 < G.q_cap || q3 / 4 < G.q_cap || q4 / 2 < G.q_cap || q5 < G.q_cap || q6 / 16 < G.q_cap ||
      cb / 8 < C_COUNT)
    return throw_type(env, "setup: send queue arrays too small");
  G.q_socks = v1;
  G.q_offsets = v2;
  G.q_lengths = v3;
  G.q_ports = v4;
  G.q_families = v5;
  G.q_addrs = v6;
  G.e_index = w1;
  G.e_code = w2;
  G.e_cap = (uint32_t)(e1 / 4 < e2 / 4 ? e1 / 4 : e2 / 4);
  G.counters = cp;
  size_t sb;
  void *sp;
  if (!get_typed(env, a[17], &sp, &sb) || sb / 4 < G.out_cap) return throw_type(env, "setup: socks array");
  G.r_socks = sp;
  napi_valuetype ft;
  napi_typeof(env, a[18], &ft);
  if (ft != napi_function) return throw_type(env, "setup: dispatch must be a function");
  napi_create_reference(env, a[18], 1, &G.dispatch);
  napi_value res_name;
  napi_create_string_utf8(env, "udpmesh:udp_batch", NAPI_AUTO_LENGTH, &res_name);
  napi_async_init(env, NULL, res_name, &G.async);
  G.env = env;
  if (napi_get_uv_event_loop(env, &G.loop) != napi_ok) return throw_type(env, "setup: no event loop");
  uv_check_init(G.loop, &G.check);
  uv_check_start(&G.check, on_check);
  uv_unref((uv_handle_t *)&G.check);
  G.gso_ok = 1;
  G.ready = 1;
  return NULL;
}

// ------------------------------------------------------------------ receive

static void call_js(sock_t *s, napi_ref fn_ref, int argc, napi_value *argv) {
  napi_env env = G.env;
  napi_value fn, recv, result;
  if (napi_get_reference_value(env, fn_ref, &fn) != napi_ok || fn == NULL) return;
  napi_get_global(env, &recv);  // napi_make_callback needs an object receiver
  napi_status st = napi_make_callback(env, s ? s->async : G.async, recv, fn, (size_t)argc, argv, &result);
  if (st == napi_pending_exception) {
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);  // same as an exception thrown from any other I/O callback
  }
}

static void report_error(sock_t *s, int err, const char *syscall) {
  napi_handle_scope scope;
  napi_open_handle_scope(G.env, &scope);
  napi_value argv[2];
  napi_create_int32(G.env, err, &argv[0]);
  napi_create_string_utf8(G.env, syscall, NAPI_AUTO_LENGTH, &argv[1]);
  call_js(s, s->on_error, 2, argv);
  napi_close_handle_scope(G.env, scope);
}

// Hands everything read since the last hand-over to JS in one call, then frees the ring and the ids of
// sockets closed meanwhile.
static void deliver(void) {
  if (G.pending > 0) {
    napi_handle_scope scope;
    napi_open_handle_scope(G.env, &scope);
    napi_value argv[1];
    napi_create_uint32(G.env, G.pending, &argv[0]);
    G.counters[C_CALLBACKS]++;
    call_js(NULL, G.dispatch, 1, argv);
    napi_close_handle_scope(G.env, scope);
  }
  G.pending = 0;
  G.used_slots = 0;
  for (int i = 0; i < G.nquarantine; i++)
    if (G.socks[G.quarantine[i]] == &CLOSED_PENDING) G.socks[G.quarantine[i]] = NULL;
  G.nquarantine = 0;
}

static void on_check(uv_check_t *h) {
  (void)h;
  if (G.pending > 0) deliver();
}

static void on_readable(uv_poll_t *h, int status, int events) {
  sock_t *s = (sock_t *)h->data;
  (void)events;
  if (s->closing) return;
  if (status < 0) {
    G.counters[C_RECV_ERRORS]++;
    report_error(s, -status, "uv_poll");
    return;
  }
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH];
  struct sockaddr_storage from[MAX_BATCH];
  char ctrl[MAX_BATCH][CMSG_SPACE(sizeof(int))];
  for (int round = 0; round < READS_PER_WAKEUP && !s->closing; round++) {
    if (G.used_slots >= G.slots) deliver();  // ring full: hand over now, then read on
    if (s->closing) return;
    uint32_t first = G.used_slots;
    uint32_t n_slots = G.slots - first;
    for (uint32_t i = 0; i < n_slots; i++) {
      iov[i].iov_base = G.ring.data + (size_t)(first + i) * G.slot_size;
      iov[i].iov_len = G.slot_size;
      memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof from[i];
      if (s->gro) {
        msgs[i].msg_hdr.msg_control = ctrl[i];
        msgs[i].msg_hdr.msg_controllen = sizeof ctrl[i];
      }
    }
    int got = recvmmsg(s->fd, msgs, n_slots, MSG_DONTWAIT, NULL);
    G.counters[C_RECV_CALLS]++;
    if (got < 0) {
      int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return;
      G.counters[C_RECV_ERRORS]++;
      // ICMP errors on connected sockets (ECONNREFUSED) are reported, not fatal; the socket stays open.
      report_error(s, err, "recvmmsg");
      if (err != ECONNREFUSED && err != EHOSTUNREACH && err != ENETUNREACH) return;
      continue;
    }
    if (got == 0) return;
    uint32_t out = G.pending;
    for (int i = 0; i < got; i++) {
      uint32_t len = msgs[i].msg_len;
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
        // Larger than a slot: never deliver a truncated datagram; count it.
        G.counters[C_RECV_TRUNCATED]++;
        continue;
      }
      uint32_t seg = len;
      if (s->gro) {
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c; c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int gs;
            memcpy(&gs, CMSG_DATA(c), sizeof gs);
            if (gs > 0 && (uint32_t)gs < len) seg = (uint32_t)gs;
          }
        }
      }
      if (seg < len) G.counters[C_RECV_GRO_SPLITS]++;
      uint8_t fam = 0, addr[16];
      uint16_t port = 0;
      memset(addr, 0, 16);
      if (from[i].ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&from[i];
        fam = 4;
        memcpy(addr, &a->sin_addr, 4);
        port = ntohs(a->sin_port);
      } else if (from[i].ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&from[i];
        fam = 6;
        memcpy(addr, a->sin6_addr.s6_addr, 16);
        port = ntohs(a->sin6_port);
      }
      uint32_t base = (first + (uint32_t)i) * G.slot_size;
      // do/while: an empty datagram is one entry of length 0, not none.
      uint32_t off = 0;
      do {
        if (out >= G.out_cap) break;
        uint32_t l = len - off < seg ? len - off : seg;
        G.r_socks[out] = s->id;
        G.r_offsets[out] = base + off;
        G.r_lengths[out] = l;
        G.r_ports[out] = port;
        G.r_families[out] = fam;
        memcpy(G.r_addrs + (size_t)out * 16, addr, 16);
        out++;
        off += seg;
      } while (off < len);
    }
    G.counters[C_RECV_DATAGRAMS] += out - G.pending;
    G.pending = out;
    G.used_slots = first + (uint32_t)got;
    if ((uint32_t)got < n_slots) return;  // drained; the uv_check handle hands it over after the poll phase
  }
}

// ------------------------------------------------------------------ open(family, address, port, reusePort,
// ipv6Only, rcvbuf, sndbuf, gro, onBatch, onError) -> id

static void set_buf(int fd, int opt, int size) {
  if (size <= 0) return;
  // SO_RCVBUFFORCE/SO_SNDBUFFORCE pass rmem_max when privileged; otherwise the plain option (capped).
  int force = opt == SO_RCVBUF ? SO_RCVBUFFORCE : SO_SNDBUFFORCE;
  if (setsockopt(fd, SOL_SOCKET, force, &size, sizeof size) == 0) return;
  setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value a[10];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  if (!G.ready) return throw_type(env, "open: setup() first");
  if (argc < 10) return throw_type(env, "open: 10 arguments expected");
  int32_t family, port, rcvbuf, sndbuf;
  bool reuse, v6only, gro;
  napi_get_value_int32(env, a[0], &family);
  napi_get_value_int32(env, a[2], &port);
  napi_get_value_bool(env, a[3], &reuse);
  napi_get_value_bool(env, a[4], &v6only);
  napi_get_value_int32(env, a[5], &rcvbuf);
  napi_get_value_int32(env, a[6], &sndbuf);
  napi_get_value_bool(env, a[7], &gro);
  if (family != 4 && family != 6) return throw_type(env, "open: family must be 4 or 6");
  if (port < 0 || port > 65535) return throw_type(env, "open: port out of range");
  napi_valuetype t;
  napi_typeof(env, a[1], &t);
  uint8_t addr[16];
  int bind_it = t == napi_string;
  if (bind_it && !parse_addr(env, a[1], family, addr)) return throw_type(env, "open: not an IP address literal");
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_errno(env, errno, "socket");
  int one = 1;
  if (reuse && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) {
    int e = errno;
    close(fd);
    return throw_errno(env, e, "setsockopt(SO_REUSEPORT)");
  }
  if (family == 6) {
    int v = v6only ? 1 : 0;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, sizeof v);
  }
  set_buf(fd, SO_RCVBUF, rcvbuf);
  set_buf(fd, SO_SNDBUF, sndbuf);
  int use_gro = 0;
  if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) == 0) use_gro = 1;
  if (bind_it) {
    struct sockaddr_storage ss;
    socklen_t sl = make_addr(family, family, addr, (uint16_t)port, &ss);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
      int e = errno;
      close(fd);
      return throw_errno(env, e, "bind");
    }
  }
  sock_t *s = calloc(1, sizeof *s);
  if (!s) {
    close(fd);
    return throw_errno(env, ENOMEM, "calloc");
  }
  s->fd = fd;
  s->family = family;
  s->gro = use_gro;
  int r = uv_poll_init(G.loop, &s->poll, fd);
  if (r < 0) {
    free(s);
    close(fd);
    return throw_errno(env, -r, "uv_poll_init");
  }
  s->poll.data = s;
  napi_create_reference(env, a[9], 1, &s->on_error);
  napi_value res_name;
  napi_create_string_utf8(env, "udpmesh:udp_batch", NAPI_AUTO_LENGTH, &res_name);
  napi_async_init(env, NULL, res_name, &s->async);
  // find a free id
  int id = -1;
  for (int i = 0; i < G.nsocks; i++)
    if (G.socks[i] == NULL) {
      id = i;
      break;
    }
  if (id < 0) {
    sock_t **n = realloc(G.socks, sizeof *n * (size_t)(G.nsocks ? G.nsocks * 2 : 64));
    if (!n) {
      close(fd);
      free(s);
      return throw_errno(env, ENOMEM, "realloc");
    }
    int old = G.nsocks;
    G.socks = n;
    G.nsocks = old ? old * 2 : 64;
    for (int i = old; i < G.nsocks; i++) G.socks[i] = NULL;
    id = old;
  }
  s->id = id;
  G.socks[id] = s;
  r = uv_poll_start(&s->poll, UV_READABLE, on_readable);
  if (r < 0) {
    // leave the socket registered; close() will release it
    return throw_errno(env, -r, "uv_poll_start");
  }
  napi_value out;
  napi_create_int32(env, id, &out);
  return out;
}

// getsockname + achieved buffers: [address, port, family, rcvbuf, sndbuf, gro]
static napi_value js_info(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  sock_t *s = sock_by_id(env, a[0]);
  if (!s) return NULL;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockname(s->fd, (struct sockaddr *)&ss, &sl) < 0) return throw_errno(env, errno, "getsockname");
  char host[INET6_ADDRSTRLEN] = "";
  int port = 0;
  if (ss.ss_family == AF_INET) {
    struct sockaddr_in *x = (struct sockaddr_in *)&ss;
    inet_ntop(AF_INET, &x->sin_addr, host, sizeof host);
    port = ntohs(x->sin_port);
  } else {
    struct sockaddr_in6 *x = (struct sockaddr_in6 *)&ss;
    inet_ntop(AF_INET6, &x->sin6_addr, host, sizeof host);
    port = ntohs(x->sin6_port);
  }
  int rcv = 0, snd = 0;
  socklen_t l = sizeof rcv;
  getsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcv, &l);
  l = sizeof snd;
  getsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &snd, &l);
  napi_value arr, v;
  napi_create_array_with_length(env, 6, &arr);
  napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &v);
  napi_set_element(env, arr, 0, v);
  napi_create_int32(env, port, &v);
  napi_set_element(env, arr, 1, v);
  napi_create_int32(env, s->family, &v);
  napi_set_element(env, arr, 2, v);
  napi_create_int32(env, rcv, &v);
  napi_set_element(env, arr, 3, v);
  napi_create_int32(env, snd, &v);
  napi_set_element(env, arr, 4, v);
  napi_get_boolean(env, s->gro != 0, &v);
  napi_set_element(env, arr, 5, v);
  return arr;
}

// connect(id, family, address, port): UDP connect is synchronous.
static napi_value js_connect(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value a[4];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  sock_t *s = sock_by_id(env, a[0]);
  if (!s) return NULL;
  int32_t family, port;
  napi_get_value_int32(env, a[1], &family);
  napi_get_value_int32(env, a[3], &port);
  uint8_t addr[16];
  if (!parse_addr(env, a[2], family, addr)) return throw_type(env, "connect: not an IP address literal");
  if (port < 1 || port > 65535) return throw_type(env, "connect: port out of range");
  if (family == 6 && s->family == 4) return throw_errno(env, EAFNOSUPPORT, "connect");
  struct sockaddr_storage ss;
  socklen_t sl = make_addr(s->family, family, addr, (uint16_t)port, &ss);
  if (connect(s->fd, (struct sockaddr *)&ss, sl) < 0) return throw_errno(env, errno, "connect");
  s->connected = 1;
  return NULL;
}

// pton6(address, out Uint8Array, offset): IPv6 literal -> 16 bytes (IPv4 is parsed in JS). Returns bool.
static napi_value js_pton6(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value a[3];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  uint8_t addr[16];
  napi_value res;
  bool ok = parse_addr(env, a[0], 6, addr);
  if (ok) {
    void *p;
    size_t len, off;
    napi_typedarray_type t;
    napi_value ab;
    uint32_t at;
    napi_get_value_uint32(env, a[2], &at);
    if (napi_get_typedarray_info(env, a[1], &t, &len, &p, &ab, &off) != napi_ok || (size_t)at + 16 > len)
      return throw_type(env, "pton6: output too small");
    memcpy((uint8_t *)p + at, addr, 16);
  }
  napi_get_boolean(env, ok, &res);
  return res;
}

// ntop6(Uint8Array, offset) -> string
static napi_value js_ntop6(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  void *p;
  size_t len, off;
  napi_typedarray_type t;
  napi_value ab;
  uint32_t at;
  napi_get_value_uint32(env, a[1], &at);
  if (napi_get_typedarray_info(env, a[0], &t, &len, &p, &ab, &off) != napi_ok || (size_t)at + 16 > len)
    return throw_type(env, "ntop6: input too small");
  char host[INET6_ADDRSTRLEN];
  inet_ntop(AF_INET6, (uint8_t *)p + at, host, sizeof host);
  napi_value res;
  napi_create_string_utf8(env, host, NAPI_AUTO_LENGTH, &res);
  return res;
}

// ------------------------------------------------------------------ send: flush(count) -> errors recorded

static uint32_t n_err;

static void record_error(uint32_t entry, int err) {
  G.counters[C_SEND_ERRORS]++;
  if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) G.counters[C_SEND_WOULDBLOCK]++;
  if (n_err < G.e_cap) {
    G.e_index[n_err] = (int32_t)entry;
    G.e_code[n_err] = err;
    n_err++;
  }
}

static int same_dest(uint32_t i, uint32_t j) {
  return G.q_ports[i] == G.q_ports[j] && G.q_families[i] == G.q_families[j] &&
         memcmp(G.q_addrs + (size_t)i * 16, G.q_addrs + (size_t)j * 16, 16) == 0;
}

// Sends entries [from, to) which all belong to socket s.
static void send_run(sock_t *s, uint32_t from, uint32_t to) {
  struct mmsghdr msgs[MAX_BATCH];
  struct iovec iov[MAX_BATCH * 4];
  struct sockaddr_storage dst[MAX_BATCH];
  char ctrl[MAX_BATCH][CMSG_SPACE(sizeof(uint16_t))];
  uint32_t first_entry[MAX_BATCH], n_entries[MAX_BATCH];
  uint32_t i = from;
  while (i < to) {
    int m = 0;
    uint32_t niov = 0;
    while (i < to && m < MAX_BATCH) {
      if (s->family == 4 && G.q_families[i] == 6) {
        record_error(i, EAFNOSUPPORT);  // an IPv6 destination for an IPv4 socket
        i++;
        continue;
      }
      // A GSO run: same destination, equal sizes (the last may be shorter), within the kernel's limits.
      uint32_t seg = G.q_lengths[i];
      uint32_t j = i + 1, total = seg;
      if (G.gso_ok && seg > 0) {
        while (j < to && j - i < MAX_GSO_SEGS && niov + (j - i) < MAX_BATCH * 4 - 1 && same_dest(i, j) &&
               G.q_lengths[j] <= seg && total + G.q_lengths[j] <= MAX_GSO_BYTES) {
          total += G.q_lengths[j];
          uint32_t l = G.q_lengths[j];
          j++;
          if (l < seg) break;  // a shorter segment must be the last
        }
      }
      if (niov + (j - i) > MAX_BATCH * 4) break;
      struct msghdr *h = &msgs[m].msg_hdr;
      memset(h, 0, sizeof *h);
      h->msg_iov = &iov[niov];
      for (uint32_t k = i; k < j; k++) {
        iov[niov].iov_base = G.arena.data + G.q_offsets[k];
        iov[niov].iov_len = G.q_lengths[k];
        niov++;
      }
      h->msg_iovlen = j - i;
      if (G.q_families[i] != 0) {
        h->msg_name = &dst[m];
        h->msg_namelen = make_addr(s->family, G.q_families[i], G.q_addrs + (size_t)i * 16, G.q_ports[i], &dst[m]);
      }
      if (j - i > 1) {
        h->msg_control = ctrl[m];
        h->msg_controllen = sizeof ctrl[m];
        struct cmsghdr *c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        uint16_t gs = (uint16_t)seg;
        memcpy(CMSG_DATA(c), &gs, sizeof gs);
      }
      first_entry[m] = i;
      n_entries[m] = j - i;
      m++;
      i = j;
    }
    int k = 0;
    while (k < m) {
      int r = sendmmsg(s->fd, msgs + k, (unsigned)(m - k), MSG_DONTWAIT);
      G.counters[C_SEND_CALLS]++;
      if (r < 0) {
        int err = errno;
        if (err == EINTR) continue;
        if (n_entries[k] > 1 && (err == EIO || err == EINVAL || err == EOPNOTSUPP)) {
          // GSO refused: EINVAL when segment + headers exceed the path MTU (this message only); EIO or
          // EOPNOTSUPP when the device cannot checksum-offload (turn GSO off for good). Either way this
          // message's segments go one by one.
          if (err != EINVAL) {
            G.gso_ok = 0;
            G.counters[C_GSO_DISABLED]++;
          }
          int saved = G.gso_ok;
          G.gso_ok = 0;
          for (uint32_t e = first_entry[k]; e < first_entry[k] + n_entries[k]; e++) send_run(s, e, e + 1);
          G.gso_ok = saved;
          k++;
          continue;
        }
        for (uint32_t e = first_entry[k]; e < first_entry[k] + n_entries[k]; e++) record_error(e, err);
        k++;
        continue;
      }
      for (int x = k; x < k + r; x++) {
        G.counters[C_SEND_DATAGRAMS] += n_entries[x];
        if (n_entries[x] > 1) G.counters[C_SEND_GSO_MESSAGES]++;
      }
      k += r;
    }
  }
}

static napi_value js_flush(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  uint32_t count;
  if (napi_get_value_uint32(env, a[0], &count) != napi_ok || count > G.q_cap) return throw_type(env, "flush: count");
  n_err = 0;
  uint32_t i = 0;
  while (i < count) {
    int32_t id = G.q_socks[i];
    uint32_t j = i + 1;
    while (j < count && G.q_socks[j] == id) j++;
    sock_t *s = (id >= 0 && id < G.nsocks && G.socks[id] != &CLOSED_PENDING) ? G.socks[id] : NULL;
    if (s == NULL || s->closing) {
      for (uint32_t e = i; e < j; e++) record_error(e, EBADF);
    } else {
      send_run(s, i, j);
    }
    i = j;
  }
  napi_value out;
  napi_create_uint32(env, n_err, &out);
  return out;
}

// ------------------------------------------------------------------ close(id)

static void on_closed(uv_handle_t *h) {
  sock_t *s = (sock_t *)h->data;
  close(s->fd);
  free(s);
}

static napi_value js_close(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value a[1];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  int32_t id;
  if (napi_get_value_int32(env, a[0], &id) != napi_ok || id < 0 || id >= G.nsocks || G.socks[id] == NULL)
    return NULL;  // closing twice is harmless
  sock_t *s = G.socks[id];
  if (s == &CLOSED_PENDING) return NULL;
  G.socks[id] = NULL;
  if (G.pending > 0) {
    // Entries of this socket may wait in the ring: its id must not go to a new socket before they are
    // handed over (JS would give them to the new one).
    if (G.nquarantine == G.capquarantine) {
      int cap = G.capquarantine ? G.capquarantine * 2 : 64;
      int32_t *q = realloc(G.quarantine, sizeof *q * (size_t)cap);
      if (q) {
        G.quarantine = q;
        G.capquarantine = cap;
      }
    }
    if (G.nquarantine < G.capquarantine) {
      G.quarantine[G.nquarantine++] = id;
      G.socks[id] = &CLOSED_PENDING;
    }
  }
  s->closing = 1;
  napi_delete_reference(env, s->on_error);
  napi_async_destroy(env, s->async);
  uv_poll_stop(&s->poll);
  uv_close((uv_handle_t *)&s->poll, on_closed);
  return NULL;
}

// ref/unref: like dgram's, an idle socket need not keep the process alive.
static napi_value js_ref(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value a[2];
  napi_get_cb_info(env, info, &argc, a, NULL, NULL);
  sock_t *s = sock_by_id(env, a[0]);
  if (!s) return NULL;
  bool on;
  napi_get_value_bool(env, a[1], &on);
  if (on) uv_ref((uv_handle_t *)&s->poll);
  else uv_unref((uv_handle_t *)&s->poll);
  return NULL;
}

static napi_value js_sockets(napi_env env, napi_callback_info info) {
  (void)info;
  int n = 0;
  for (int i = 0; i < G.nsocks; i++) n += G.socks[i] != NULL && G.socks[i] != &CLOSED_PENDING;
  napi_value out;
  napi_create_int32(env, n, &out);
  return out;
}

/* Bump with every change of the interface to replicator/io/native.ts (functions, setup arrays, counters):
 * a binary built from older source is then refused with a clear reason instead of misbehaving. */
#define UDP_BATCH_ABI 2

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor d[] = {
      {"setup", NULL, js_setup, NULL, NULL, NULL, napi_default, NULL},
      {"open", NULL, js_open, NULL, NULL, NULL, napi_default, NULL},
      {"info", NULL, js_info, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
      {"flush", NULL, js_flush, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"ref", NULL, js_ref, NULL, NULL, NULL, napi_default, NULL},
      {"pton6", NULL, js_pton6, NULL, NULL, NULL, napi_default, NULL},
      {"ntop6", NULL, js_ntop6, NULL, NULL, NULL, napi_default, NULL},
      {"sockets", NULL, js_sockets, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof d / sizeof d[0], d);
  napi_value counters;
  napi_create_uint32(env, C_COUNT, &counters);
  napi_set_named_property(env, exports, "counterSlots", counters);
  /* The JS side (replicator/io/native.ts, ADDON_ABI) refuses a binary built from other source. */
  napi_value abi;
  napi_create_uint32(env, UDP_BATCH_ABI, &abi);
  napi_set_named_property(env, exports, "abi", abi);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)

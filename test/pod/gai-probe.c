/*
 * gai-probe: resolves each name argument with getaddrinfo (AF_UNSPEC, so the
 * stub resolver asks A and AAAA) and prints one JSON line per name:
 *   {"name":"web","ok":true,"addresses":["198.51.100.80"]}
 *   {"name":"nope","ok":false,"error":"EAI_NONAME","message":"Name does not resolve"}
 * Built by test/helpers/pod.ts with Debian's musl-gcc (-static) at test time,
 * so the musl stub resolver is the one under test. Exit status: 0 when every
 * name resolved, 2 otherwise.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static const char *code_name(int rc) {
  switch (rc) {
  case EAI_NONAME: return "EAI_NONAME";
  case EAI_AGAIN: return "EAI_AGAIN";
  case EAI_FAIL: return "EAI_FAIL";
  case EAI_NODATA: return "EAI_NODATA";
  case EAI_SYSTEM: return "EAI_SYSTEM";
  default: return "EAI_OTHER";
  }
}

int main(int argc, char **argv) {
  int status = 0;
  for (int i = 1; i < argc; i++) {
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(argv[i], NULL, &hints, &res);
    if (rc != 0) {
      printf("{\"name\":\"%s\",\"ok\":false,\"error\":\"%s\",\"message\":\"%s\"}\n", argv[i], code_name(rc), gai_strerror(rc));
      status = 2;
      continue;
    }
    printf("{\"name\":\"%s\",\"ok\":true,\"addresses\":[", argv[i]);
    const char *sep = "";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      char text[INET6_ADDRSTRLEN];
      const void *addr = ai->ai_family == AF_INET6 ? (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr
                                                   : (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr;
      if (!inet_ntop(ai->ai_family, addr, text, sizeof text)) continue;
      printf("%s\"%s\"", sep, text);
      sep = ",";
    }
    printf("]}\n");
    freeaddrinfo(res);
  }
  return status;
}

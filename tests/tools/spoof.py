#!/usr/bin/env python3
"""Sends UDP datagrams with forged source addresses through a raw socket (IP_HDRINCL), for the
hardening tests. Run as root inside a test namespace, towards test addresses only.

  spoof.py flood DST_IP DST_PORT SRC_PREFIX COUNT RATE
      COUNT one-byte datagrams, each from a distinct source tuple: addresses SRC_PREFIX.10 upwards,
      ports 1024-65535, at RATE datagrams per second. Prints "SENT <n>".
  spoof.py once DST_IP DST_PORT SRC_IP SRC_PORT HEX
      One datagram with the payload HEX from SRC_IP:SRC_PORT.
"""
import os
import socket
import struct
import sys
import time


def packet(src, sport, dst, dport, payload):
    udp_len = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, udp_len, 0) + payload  # checksum 0: none (RFC 768)
    # Version/IHL, TOS, total length, id, flags/fragment, TTL, protocol, checksum (kernel fills), src, dst.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + udp_len, 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    mode = sys.argv[1]
    if mode == "once":
        dst, dport, src, sport, hexdata = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
        sock.sendto(packet(src, sport, dst, dport, bytes.fromhex(hexdata)), (dst, 0))
        print("SENT 1")
        return
    dst, dport, prefix, count, rate = sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6])
    ports = 65535 - 1024
    start = time.monotonic()
    sent = 0
    batch = 100
    while sent < count:
        for _ in range(min(batch, count - sent)):
            host = f"{prefix}.{10 + sent // ports}"
            sock.sendto(packet(host, 1024 + sent % ports, dst, dport, os.urandom(1)), (dst, 0))
            sent += 1
        ahead = sent / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
    print(f"SENT {sent}")


if __name__ == "__main__":
    main()

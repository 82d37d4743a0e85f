"""Capture sources: pcap/pcapng files and pipes, Linux AF_PACKET rings, libpcap (I/O layer)."""

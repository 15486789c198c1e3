"""The kernel side: what the running kernel is (BTF, tracepoint formats), the BPF
program built for it, compiling it with bcc in a helper process or loading its
cached image through bpf(2), and reading its events (ring or perf buffer, the
wire format) back into Python.

Everything that needs root, bcc or a particular kernel lives here; the rest of
proctrace sees only decoded events.
"""

"""The process: CPU threads (read before Paddle loads), the device, the heap, ranks of a
distributed run, progress bars and status lines."""

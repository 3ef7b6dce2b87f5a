//! Recording: load the kernel programs, attach, drain the ring buffer into a capture.

"""Small system helpers: atomic files and locks, loopback rules, process hardening, the loop thread, digests."""

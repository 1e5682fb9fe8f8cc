"""Hostile inputs built at test time: each must get a clear error in bounded time, and run no code."""

"""Venues: where orders go. ``base`` defines the protocol and events; ``sim`` the simulated venue."""

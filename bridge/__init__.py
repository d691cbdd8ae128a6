"""nova-hostdown-bridge: monitoring alerts -> fenced, forced-down Nova compute hosts."""

__version__ = "0.1.0"

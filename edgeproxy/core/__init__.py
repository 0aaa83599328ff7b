"""
The sans-IO core: pure policy with no reactor, no sockets and no clock.

Nothing here imports Twisted or reads the time; time comes in as an argument.
"""

"""`packetd top`: watch's records grouped, sorted and refreshed in a terminal (a Textual app), or one table
of a capture file.

aggregate.py is the pure part (windows, percentiles, grouping, sorting); render.py turns its rows into
text or JSON; app.py is the live Textual app; command.py the `top` subcommand (I/O).
"""

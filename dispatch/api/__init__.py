"""``dispatch serve``: the read models over HTTP, a live change stream and the board."""

"""Floor 2: the actors (tabs, server, workload, observer). They run unchanged on every
runtime; only the network and the clock behind :class:`~simkit.actors.env.Env` differ."""

"""The session runtime: the immutable snapshot the console reads (:mod:`engine.runtime.snapshot`),
the commands it may send (:mod:`engine.runtime.snapshot`), and the sessions that implement them
(:mod:`engine.runtime.session` replay, :mod:`engine.runtime.live` paper/live). Never imports textual."""

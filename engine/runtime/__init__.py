"""The session runtime: the immutable snapshot the console reads (:mod:`engine.runtime.snapshot`),
the commands it may send, and a demo stand-in (:mod:`engine.runtime.demo`). Never imports textual."""

"""`proctrace --top`: a live, full-screen view of the process tree as it changes.

model.py turns the session's ProcessTable into the rows on screen (pure, tested
without a terminal); screen.py draws them as lines of text; terminal.py owns
the terminal (its modes, keys); app.py is the Sink that joins them to a
session, live or replayed."""

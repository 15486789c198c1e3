"""The formats: every way an event or a session leaves proctrace as text or bytes:
the pretty stream, JSON lines, the end-of-session views, the Chrome trace and
recordings. Wording and escaping each have one home (text.py, words.py) that all
of them use."""

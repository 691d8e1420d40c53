"""`postfx demo`: the demo scene stylized every frame, in a window (window.py)
or headless to a video / PNG frames and a before | after contact sheet (headless.py)."""

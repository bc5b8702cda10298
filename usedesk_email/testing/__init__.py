"""Real servers on 127.0.0.1 for the engine tests, the Frappe tests and the demo command.

Nothing here imports frappe; it ships in the package so a bench can use it too.
"""

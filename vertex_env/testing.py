"""pytest plugin (entry point `pytest11`): fixtures for testing apps offline against the emulator.

Inert unless a test asks for its fixtures.
"""

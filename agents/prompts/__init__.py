"""The LLM agent's prompt templates (text files), a package so they install as package data."""

"""The LLM agent's prompt templates: text files, in a package so they install as package data."""

"""The record engine: one declaration per kind of record (`Kind`), read by a kind-agnostic store,
history, validation, loader and write routes."""

"""Driving a real vLLM server: the launcher shim, the bench client and the sweep orchestration."""

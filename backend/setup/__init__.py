"""Setting the backend up: installer.py makes a Python environment with the backend's
packages (standard library only: it runs before they exist); hub.py downloads the
model from the Hugging Face hub."""

"""The browser suite: JupyterLab in headless Chromium."""

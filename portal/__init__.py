"""Code every app may use and that knows none of them: claims on rows, and the web helpers
that several apps' pages share. Nothing here imports a project app."""

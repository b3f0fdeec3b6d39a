// Shared test support; see the headers in this directory.

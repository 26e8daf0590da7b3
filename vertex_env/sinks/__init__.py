"""Where the variables go: shell text, dotenv files, an exec'd child, CI files, the daemon, status."""

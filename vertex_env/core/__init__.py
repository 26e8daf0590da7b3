"""The token core: the Token record, TokenSource (the one path to a token), cache, credentials, transport, refusals."""

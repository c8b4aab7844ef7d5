-- Admin UI (cgi-bin/ui_*.c).

-- Server-side secrets of the FastCGI app.  "csrf" is the HMAC key of the
-- admin forms' CSRF tokens (hex of 32 random bytes), created by the app on
-- first use.  Delete the row and restart Apache to rotate it.
CREATE TABLE ui_secrets (
    name        text PRIMARY KEY,
    value       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- The imports dashboard lists the most recent imports.
CREATE INDEX imports_created ON imports (created_at);

"""The browser page served by `nascreen serve` at `/` (static HTML/JS/CSS, no build step)."""

"""Reports rendered from the canonical JSON: Markdown, HTML, JUnit; compare two scans."""

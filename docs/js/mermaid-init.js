// Draws the ```mermaid blocks of these pages (pymdownx.superfences turns them into
// <div class="mermaid">): Mermaid 11.17.2 from the npm registry, vendored beside this file.
mermaid.initialize({ startOnLoad: true, securityLevel: "strict", theme: "neutral" });

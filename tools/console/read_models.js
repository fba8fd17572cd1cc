// Placeholder view: filled in by its own change.
export async function show({ panel }) {
  panel.textContent = "not built yet";
}

// Draws the interval plot from the figure JSON the server embedded (plotly.js served locally).
// The figure keeps its light background: its black "overall" markers must stay readable.
const fig = JSON.parse(document.getElementById("figure-data").textContent);
const box = document.getElementById("interval-plot");
box.style.minHeight = `${fig.layout.height || 450}px`;  // the figure's own height: no jump, no blank band
window.Plotly.newPlot(box, fig.data, fig.layout, { responsive: true, displaylogo: false });

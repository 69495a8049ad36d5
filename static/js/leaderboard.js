// Draws the interval plot from the figure JSON the server embedded (plotly.js served locally).
// The figure keeps its light background: its black "overall" markers must stay readable.
const fig = JSON.parse(document.getElementById("figure-data").textContent);
window.Plotly.newPlot("interval-plot", fig.data, fig.layout, { responsive: true, displaylogo: false });

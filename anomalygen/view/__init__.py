"""Self-contained HTML pages to look at datasets and detector runs in 3D (`anomalygen view`).

    samples.py   what a page shows: groups of lazily loaded samples
    datasets.py  dataset folders (every layout we read) as groups
    encode.py    one sample -> compact binary (quantized points, normals, colours, scores)
    page.py      the HTML file: viewer library, script, style and data inlined
    assets/      the page's template, script and style; vendor/three/ the pinned viewer library
A detector run's groups come from anomalygen.detectors.reports.view (it reads run folders).
"""

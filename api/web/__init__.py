"""The web page at `/`: upload, jobs and live transcription for people, in the browser.

Plain HTML, CSS and JavaScript modules shipped inside this package and served by the API
itself: no CDN and no build step, because the servers this runs on may have no internet and
the page must work from a wheel as it is. The page talks to the public HTTP API and the
`/v1/stream` websocket exactly as any other client does; it holds no privilege of its own.
"""

#!/usr/bin/env python3
"""A local TMDB for bench/scale: the genre lists, discover pages and details endpoints Cinelog's
importer calls, in TMDB's wire format, for N generated titles (half movies, half series).
Usage: fake_tmdb.py PORT N"""
import json
import random
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PORT, N = int(sys.argv[1]), int(sys.argv[2])
PER_PAGE = 20
PER_KIND = N // 2
GENRES = [(28, "Action"), (12, "Adventure"), (16, "Animation"), (35, "Comedy"), (80, "Crime"),
          (99, "Documentary"), (18, "Drama"), (10751, "Family"), (14, "Fantasy"), (36, "History"),
          (27, "Horror"), (10402, "Music"), (9648, "Mystery"), (10749, "Romance"),
          (878, "Science Fiction"), (53, "Thriller"), (10752, "War"), (37, "Western")]
WORDS = ("river stone winter harbor lantern orchard signal ember meadow falcon copper tide "
         "garden mirror quiet northern summer archive voyage family island secret letter "
         "engine forest glass hollow midnight paper silver thunder valley window").split()


def title(kind, tid):
    rnd = random.Random(tid * 2 + (kind == "tv"))
    words = rnd.sample(WORDS, 3)
    genres = rnd.sample(GENRES, rnd.randint(1, 3))
    name = " ".join(w.capitalize() for w in words[:2]) + f" {tid}"
    base = {"id": tid, "overview": f"A story of {words[2]}, {words[0]} and {words[1]}.",
            "genres": [{"id": g, "name": n} for g, n in genres],
            "genre_ids": [g for g, _ in genres], "popularity": round(rnd.uniform(1, 500), 3),
            "adult": False, "original_language": "en", "poster_path": f"/{kind}{tid}.jpg"}
    if kind == "movie":
        base.update(title=name, release_date=f"{rnd.randint(1950, 2025)}-05-01",
                    runtime=rnd.randint(80, 170), tagline="")
    else:
        seasons = rnd.randint(1, 4)
        base.update(name=name, first_air_date=f"{rnd.randint(1990, 2025)}-09-01",
                    episode_run_time=[rnd.choice([25, 45, 60])],
                    seasons=[{"season_number": s, "episode_count": rnd.randint(6, 12)}
                             for s in range(0, seasons + 1)])
    return base


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as TMDB's own servers

    def log_message(self, *args):
        pass

    def answer(self, body, status=200):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts[:1] == ["genre"]:
            return self.answer({"genres": [{"id": g, "name": n} for g, n in GENRES]})
        if parts[:1] == ["discover"] and len(parts) == 2:
            page = int(parse_qs(url.query).get("page", ["1"])[0])
            first = (page - 1) * PER_PAGE + 1
            ids = range(first, min(first + PER_PAGE, PER_KIND + 1))
            total = (PER_KIND + PER_PAGE - 1) // PER_PAGE
            return self.answer({"page": page, "results": [title(parts[1], i) for i in ids],
                                "total_pages": total, "total_results": PER_KIND})
        if len(parts) == 2 and parts[0] in ("movie", "tv") and parts[1].isdigit():
            tid = int(parts[1])
            if 1 <= tid <= PER_KIND:
                return self.answer(title(parts[0], tid))
        return self.answer({"status_code": 34, "status_message": "The resource you requested could not be found."}, 404)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()

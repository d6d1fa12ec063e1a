"""``faceanim study serve``: the rater and admin pages of a study and their HTTP API (FastAPI on uvicorn).

Routes (TOKEN: a rater's token; ADMIN: the study's admin token; 404 for anything a token may not see):

- ``GET /r/TOKEN``: the rater page (plain HTML + a little JS, served from here: no CDN).
- ``GET /api/r/TOKEN/state``: progress and the next item ``{"rater", "answered", "total", "item", "questions",
  "choices"}``; ``item`` is ``{"id", "prompt", "left", "right"}`` with the videos' URLs relative to the rater page
  (which method is where is not sent), or null when every item is answered.
- ``POST /api/r/TOKEN/answer`` with ``{"item": ID, "frame": SIDE, "video": SIDE, "alignment": SIDE}``, SIDE
  ``left`` / ``right`` (/ ``none`` when the study allows it): stored in one transaction before the reply
  ``{"saved": true|false, "state": …}`` (false: the item was already answered; the first answer counts).
- ``GET /media/TOKEN/ITEM/left|right``: a video of the rater's own item.
- ``GET /admin/ADMIN``: progress per rater and the rater links; ``GET /api/admin/ADMIN/progress`` (JSON);
  ``GET /admin/ADMIN/answers.csv``: every answer with the methods behind the sides.
"""

import csv
import io
import socket
from importlib import resources
from typing import Any, Callable

from faceanim.errors import FaceanimError
from faceanim.study.design import QUESTIONS
from faceanim.study.store import InvalidAnswer, NotFound, StudyStore

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7862
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}
CSV_COLUMNS = ("rater", "position", "kind", "pair", "prompt", "face", "seed", "left_method", "right_method",
               "left_prompt", "right_prompt", "frame", "video", "alignment", "frame_method", "video_method",
               "alignment_method", "expected", "check_passed", "answered_at")


def _page(name: str) -> str:
    return resources.files("faceanim.web").joinpath("study_pages", name).read_text(encoding="utf-8")


def create_app(store: StudyStore):
    """The FastAPI app of ``store``."""
    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response

    app = FastAPI(title="faceanim study", docs_url=None, redoc_url=None, openapi_url=None)
    rater_html, admin_html = _page("rater.html"), _page("admin.html")
    questions = [{"key": k, "column": c, "text": t} for k, (c, t) in QUESTIONS.items()]

    @app.exception_handler(NotFound)
    def not_found(request: Request, exc: NotFound):
        return JSONResponse({"error": "not found"}, status_code=404, headers=NO_STORE)

    @app.exception_handler(InvalidAnswer)
    def invalid(request: Request, exc: InvalidAnswer):
        return JSONResponse({"error": str(exc)}, status_code=422, headers=NO_STORE)

    def state(token: str) -> dict[str, Any]:
        st = store.state(token)
        if st["item"] is not None:
            i = st["item"]["id"]
            st["item"]["left"] = f"../media/{token}/{i}/left"  # relative to the rater page /r/TOKEN
            st["item"]["right"] = f"../media/{token}/{i}/right"
        return {**st, "questions": questions, "choices": list(store.choices)}

    def admin(token: str) -> None:
        if not store.is_admin(token):
            raise NotFound("unknown admin token")

    @app.get("/", response_class=PlainTextResponse)
    def index():
        return PlainTextResponse("faceanim study: open the link you were given.", headers=NO_STORE)

    @app.get("/r/{token}")
    def rater_page(token: str):
        store.state(token)  # unknown token: 404
        return HTMLResponse(rater_html, headers=NO_STORE)

    @app.get("/api/r/{token}/state")
    def rater_state(token: str):
        return JSONResponse(state(token), headers=NO_STORE)

    @app.post("/api/r/{token}/answer")
    async def rater_answer(token: str, request: Request):
        try:
            body = await request.json()
        except ValueError:
            raise InvalidAnswer("the body must be JSON") from None
        if not isinstance(body, dict) or type(body.get("item")) is not int:
            raise InvalidAnswer("give the item id as 'item'")
        from starlette.concurrency import run_in_threadpool

        answer = {k: v for k, v in body.items() if k != "item"}
        saved = await run_in_threadpool(store.submit, token, body["item"], answer)
        return JSONResponse({"saved": saved, "state": await run_in_threadpool(state, token)}, headers=NO_STORE)

    @app.get("/media/{token}/{item_id}/{side}")
    def media(token: str, item_id: int, side: str):
        path = store.media(token, item_id, side)
        if not path.is_file():
            raise NotFound("video file missing")
        return FileResponse(path, media_type="video/mp4", headers={"Referrer-Policy": "no-referrer"})

    @app.get("/admin/{token}")
    def admin_page(token: str):
        admin(token)
        return HTMLResponse(admin_html, headers=NO_STORE)

    @app.get("/api/admin/{token}/progress")
    def admin_progress(token: str):
        admin(token)
        return JSONResponse({"methods": list(store.config.methods), "raters": store.progress(),
                             "counts": store.counts()}, headers=NO_STORE)

    @app.get("/admin/{token}/answers.csv")
    def admin_csv(token: str):
        admin(token)
        return Response(answers_csv(store), media_type="text/csv; charset=utf-8",
                        headers={**NO_STORE, "Content-Disposition": 'attachment; filename="study-answers.csv"'})

    return app


def answers_csv(store: StudyStore) -> str:
    """Every answer, one row each, with the method chosen for each question (empty for "no preference")."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in store.answers():
        for q in QUESTIONS:
            side = row[q]
            row[f"{q}_method"] = {"left": row["left_method"], "right": row["right_method"]}.get(side, "")
        row["check_passed"] = "" if row["expected"] is None else int(row["alignment"] == row["expected"])
        writer.writerow({k: row.get(k) for k in CSV_COLUMNS})
    return out.getvalue()


def serve(db: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
          log: Callable[[str], None] = print) -> None:
    """Serve the study in ``db`` until interrupted. ``port`` 0 picks a free port; the first line logged is
    ``serving on http://HOST:PORT`` (the port actually bound)."""
    try:
        import uvicorn
    except ImportError:
        raise FaceanimError("faceanim study serve needs FastAPI and uvicorn: pip install 'faceanim[study]'") from None
    store = StudyStore(db)
    missing = store.missing_videos()
    if missing:
        raise FaceanimError(f"{len(missing)} videos of the study are missing under {store.source} "
                            f"(e.g. {missing[0]}): the evaluate run was moved or deleted")
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FaceanimError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{bound}"
    log(f"serving on {base}")
    log(f"admin: {base}/admin/{store.meta['admin_token']}")
    for label, token in store.rater_tokens():
        log(f"{label}: {base}/r/{token}")
    config = uvicorn.Config(create_app(store), log_level="warning", access_log=False)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()

from flask import Flask, request

app = Flask(__name__)


@app.get("/hello")
def hello():
    return {"hello": "world"}


@app.post("/echo")
def echo():
    return {"len": len(request.get_data())}

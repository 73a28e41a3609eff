def greet():
    return "hello from relpkg.helpers"

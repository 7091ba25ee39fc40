handlers/greet.so: handlers/greet.c include/redwork/handler.h
include/redwork/handler.h:

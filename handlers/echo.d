handlers/echo.so: handlers/echo.c include/redwork/handler.h
include/redwork/handler.h:
